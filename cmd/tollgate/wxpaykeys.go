package main

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"runtime"
	"strings"

	"tollgate/wxpay"
)

// merchantV3 are a merchant's WeChat Pay API v3 settings as serve,
// `tollgate wxpay check` and reconcile take them: the key material is in
// files (mounted secrets), read by load. Every problem load names says
// which flag to fix and never quotes a secret.
type merchantV3 struct {
	URL, MchID, AppID string
	v3Keys
}

// v3Keys are the API v3 key settings, the flags addV3KeyFlags declares for
// serve, `tollgate wxpay check` and reconcile alike.
type v3Keys struct {
	// PrivateKey is the merchant API private key file (apiclient_key.pem),
	// CertSerial the serial of the merchant API certificate it belongs to.
	PrivateKey string
	CertSerial string
	// APIv3Key is the file holding the 32-character APIv3 key.
	APIv3Key string
	// PublicKey and PublicKeyID are WeChat Pay's public key (public key
	// mode); both empty is platform certificate mode.
	PublicKey   string
	PublicKeyID string
}

// The flags of v3Keys, named as serve's.
const (
	flagPrivateKey  = "--wxpay-private-key"
	flagCertSerial  = "--wxpay-cert-serial"
	flagAPIv3Key    = "--wxpay-apiv3-key-file"
	flagPublicKey   = "--wxpay-public-key"
	flagPublicKeyID = "--wxpay-public-key-id"
)

// addV3KeyFlags declares the flags of k on fs, k's values being their
// defaults. With olderNames it also declares reconcile's older names:
// --wxpay-mch-key-file, --wxpay-mch-serial and --wxpay-public-key-file for
// --wxpay-private-key, --wxpay-cert-serial and --wxpay-public-key.
func addV3KeyFlags(fs *flag.FlagSet, k *v3Keys, olderNames bool) {
	for _, f := range []struct {
		p           *string
		name, older string
		usage       string
	}{
		{&k.PrivateKey, flagPrivateKey, "--wxpay-mch-key-file",
			"API v3: file of the merchant API private key (apiclient_key.pem) that signs requests"},
		{&k.CertSerial, flagCertSerial, "--wxpay-mch-serial",
			"API v3: serial number (hex) of the merchant API certificate of that key; `openssl x509 -noout -serial -in apiclient_cert.pem` prints it (its serial= is dropped)"},
		{&k.APIv3Key, flagAPIv3Key, "",
			"API v3: file holding the APIv3 key (32 characters): decrypts notifications and platform certificates"},
		{&k.PublicKey, flagPublicKey, "--wxpay-public-key-file",
			"API v3: file of the WeChat Pay public key (pub_key.pem), with " + flagPublicKeyID + "; neither: platform certificates from /v3/certificates"},
		{&k.PublicKeyID, flagPublicKeyID, "",
			"API v3: id of that public key (PUB_KEY_ID_...)"},
	} {
		fs.StringVar(f.p, strings.TrimPrefix(f.name, "--"), *f.p, f.usage)
		if olderNames && f.older != "" {
			fs.StringVar(f.p, strings.TrimPrefix(f.older, "--"), *f.p, "older name of "+f.name)
		}
	}
}

// minMerchantKeyBits is the smallest merchant key taken: WeChat Pay's
// merchant API keys are RSA 2048.
const minMerchantKeyBits = 2048

// apiv3KeyLen is the length of an APIv3 key (AES-256).
const apiv3KeyLen = 32

// merchantKeys is the key material of a merchantV3, read and checked.
type merchantKeys struct {
	key *rsa.PrivateKey
	// serial is --wxpay-cert-serial as WeChat Pay takes it (certSerial).
	serial   string
	apiv3Key string // empty when not needed and not given
	// keyring holds WeChat Pay's public key in public key mode and is
	// empty in certificate mode (filled from /v3/certificates).
	keyring  *wxpay.V3Keyring
	certMode bool
	// warnings are what works but should not stay so (secret files others
	// may read).
	warnings []string
}

// certificateMode reports whether WeChat Pay's answers are verified with
// platform certificates downloaded from /v3/certificates rather than a
// configured public key.
func (s v3Keys) certificateMode() bool { return s.PublicKey == "" && s.PublicKeyID == "" }

// hasKeys reports whether any v3 key setting is given.
func (s v3Keys) hasKeys() bool {
	return s.PrivateKey != "" || s.CertSerial != "" || s.APIv3Key != "" || s.PublicKey != "" || s.PublicKeyID != ""
}

// load reads and checks the key files. problems names every setting that
// is missing, unreadable, malformed or contradictory (nothing is returned
// then); needAPIv3Key is false for a caller that only calls the API in
// public key mode (reconcile), which needs the APIv3 key only to decrypt
// platform certificates.
func (s merchantV3) load(needAPIv3Key bool) (k *merchantKeys, problems []string) {
	k = &merchantKeys{keyring: wxpay.NewV3Keyring(), certMode: s.certificateMode()}
	var p []string
	if s.PrivateKey == "" {
		p = append(p, "no "+flagPrivateKey+": API v3 signs every request with the merchant API private key (apiclient_key.pem)")
	} else if key, err := readPrivateKey(flagPrivateKey, s.PrivateKey, merchantPrivateKeyName); err != nil {
		p = append(p, err.Error())
	} else {
		k.key = key
		k.warnings = append(k.warnings, secretFileWarning(flagPrivateKey, s.PrivateKey)...)
	}
	switch k.serial = certSerial(s.CertSerial); {
	case k.serial == "":
		p = append(p, "no "+flagCertSerial+": the serial number of the merchant API certificate (in the merchant platform, or `openssl x509 -noout -serial -in apiclient_cert.pem`)")
	default:
		if err := checkCertSerial(flagCertSerial, k.serial); err != nil {
			p = append(p, err.Error())
		}
	}
	switch {
	case s.APIv3Key != "":
		if key, err := readAPIv3Key(flagAPIv3Key, s.APIv3Key); err != nil {
			p = append(p, err.Error())
		} else {
			k.apiv3Key = key
			k.warnings = append(k.warnings, secretFileWarning(flagAPIv3Key, s.APIv3Key)...)
		}
	case needAPIv3Key:
		p = append(p, "no "+flagAPIv3Key+": the file of the APIv3 key (32 characters, set in the merchant platform) that decrypts notifications and platform certificates")
	case k.certMode:
		p = append(p, "no "+flagAPIv3Key+": without "+flagPublicKey+" and "+flagPublicKeyID+" WeChat Pay's platform certificates are downloaded, and they are decrypted with the APIv3 key")
	}
	switch {
	case s.PublicKey != "" && s.PublicKeyID == "":
		p = append(p, flagPublicKey+" without "+flagPublicKeyID+": give the id shown next to the WeChat Pay public key (PUB_KEY_ID_…), or neither to use platform certificates")
	case s.PublicKey == "" && s.PublicKeyID != "":
		p = append(p, flagPublicKeyID+" without "+flagPublicKey+": give the WeChat Pay public key file (pub_key.pem) it names, or neither to use platform certificates")
	case s.PublicKey != "":
		if err := checkPublicKeyID(flagPublicKeyID, s.PublicKeyID); err != nil {
			p = append(p, err.Error())
		}
		if err := addPublicKey(k.keyring, s.PublicKeyID, s.PublicKey); err != nil {
			p = append(p, err.Error())
		}
	}
	if len(p) > 0 {
		return nil, p
	}
	return k, nil
}

// client is the V3Client of s with the keys k. In certificate mode it has
// a certificate manager (c.Certificates) and its keyring is empty until the
// first download: Preflight or Certificates.Refresh, then
// Certificates.Run keeps them fresh.
func (s merchantV3) client(k *merchantKeys) *wxpay.V3Client {
	c := &wxpay.V3Client{BaseURL: s.URL, MchID: s.MchID, AppID: s.AppID, MerchantSerialNo: k.serial,
		MerchantKey: k.key, APIv3Key: k.apiv3Key, Keyring: k.keyring}
	if k.certMode {
		wxpay.NewV3Certificates(c)
	} else {
		// Ask WeChat Pay to sign its answers with the configured public
		// key, as the SDKs do in public key mode.
		c.WechatpaySerial = s.PublicKeyID
	}
	return c
}

// describe says how s with the keys k reaches WeChat Pay, for a banner: no
// secret.
func (s merchantV3) describe(k *merchantKeys) string {
	how := "WeChat Pay public key " + s.PublicKeyID
	if s.certificateMode() {
		how = "platform certificates from /v3/certificates (refreshed every 12 h)"
	}
	return fmt.Sprintf("merchant certificate serial %s, answers verified with %s", k.serial, how)
}

// The key files, serials and ids of WeChat Pay are read and checked here
// alone: serve, `wxpay check` and reconcile (merchantV3.load) and
// `tollgate sandbox` (sandboxKeyFlags.apply) take one file, or refuse it,
// the same way. Each error names the flag and the file, never their
// content.

// What the loaders call the keys they read, in their errors.
const (
	merchantPrivateKeyName = "the merchant API private key (apiclient_key.pem)"
	wechatpayPublicKeyName = "the WeChat Pay public key (pub_key.pem)"
)

// readPrivateKey reads an RSA private key of WeChat Pay's size from the PEM
// file (PKCS#8 "PRIVATE KEY" or PKCS#1 "RSA PRIVATE KEY") of flag; what
// names the key.
func readPrivateKey(flag, path, what string) (*rsa.PrivateKey, error) {
	b, err := readSettingFile(flag, path)
	if err != nil {
		return nil, err
	}
	key, err := wxpay.LoadRSAPrivateKeyPEM(b)
	if err != nil {
		// The wxpay errors name the PEM block or the key type, never the
		// key's bytes.
		return nil, fmt.Errorf("%s %s is not %s, an RSA private key in PEM: %s", flag, path, what, pemProblem(b, err, "wxpay: private key: "))
	}
	if err := checkKeyBits(flag, path, &key.PublicKey); err != nil {
		return nil, err
	}
	return key, nil
}

// readPublicKey reads an RSA public key of WeChat Pay's size from the PEM
// file of flag: a PKIX "PUBLIC KEY", a PKCS#1 "RSA PUBLIC KEY", or a
// "CERTIFICATE", whose serial (wxpay.V3CertificateSerial) is then returned
// too; what names the key.
func readPublicKey(flag, path, what string) (pub *rsa.PublicKey, certSerial string, err error) {
	b, err := readSettingFile(flag, path)
	if err != nil {
		return nil, "", err
	}
	pub, err = wxpay.LoadRSAPublicKeyPEM(b)
	if err != nil {
		msg := pemProblem(b, err, "wxpay: public key: ")
		if strings.Contains(msg, "PRIVATE KEY") {
			msg += " (a private key: give the public key, or the certificate; a private key is never needed here)"
		}
		return nil, "", fmt.Errorf("%s %s is not %s, an RSA public key or certificate in PEM: %s", flag, path, what, msg)
	}
	if err := checkKeyBits(flag, path, pub); err != nil {
		return nil, "", err
	}
	if block, _ := pem.Decode(b); block != nil && block.Type == "CERTIFICATE" {
		if cert, err := x509.ParseCertificate(block.Bytes); err == nil {
			certSerial = wxpay.V3CertificateSerial(cert)
		}
	}
	return pub, certSerial, nil
}

// pemProblem says what is wrong with the PEM file b that the wxpay loader
// refused with err: no PEM block, a block of another type, a key that is
// not RSA, or a block of the right type whose content does not parse (the
// parser's words would be ASN.1 offsets).
func pemProblem(b []byte, err error, prefix string) string {
	msg := strings.TrimPrefix(err.Error(), prefix)
	if strings.HasPrefix(msg, "no PEM block") || strings.HasPrefix(msg, "unexpected PEM block") || strings.HasSuffix(msg, " is not RSA") {
		return msg
	}
	if block, _ := pem.Decode(b); block != nil {
		return fmt.Sprintf("the %.40s block is malformed", block.Type)
	}
	return msg
}

// checkKeyBits refuses an RSA key smaller than WeChat Pay's.
func checkKeyBits(flag, path string, pub *rsa.PublicKey) error {
	if n := pub.N.BitLen(); n < minMerchantKeyBits {
		return fmt.Errorf("%s %s is a %d-bit RSA key: WeChat Pay's keys have at least %d bits", flag, path, n, minMerchantKeyBits)
	}
	return nil
}

// readAPIv3Key reads the APIv3 key from the file of flag, without the line
// end an editor or echo adds. Its content is never quoted.
func readAPIv3Key(flag, path string) (string, error) {
	b, err := readSettingFile(flag, path)
	if err != nil {
		return "", err
	}
	key := strings.TrimRight(string(b), "\r\n")
	if len(key) != apiv3KeyLen {
		return "", fmt.Errorf("%s %s holds %d bytes: the APIv3 key is exactly %d characters (set in the merchant platform under API security)", flag, path, len(key), apiv3KeyLen)
	}
	if strings.TrimSpace(key) != key {
		return "", fmt.Errorf("%s %s: the APIv3 key starts or ends with a space", flag, path)
	}
	return key, nil
}

// maxSerialLen bounds a certificate serial in hex (RFC 5280: 20 bytes, 40
// digits; some slack).
const maxSerialLen = 64

// certSerial is a certificate serial as given to a flag, without spaces
// around it and without the "serial=" `openssl x509 -noout -serial`
// prints before it, so that its output can be pasted as it is.
func certSerial(s string) string {
	s = strings.TrimSpace(s)
	if len(s) >= len("serial=") && strings.EqualFold(s[:len("serial=")], "serial=") {
		s = strings.TrimSpace(s[len("serial="):])
	}
	return s
}

// checkCertSerial checks the certificate serial given to flag: hexadecimal,
// two digits a byte as the merchant platform and openssl print it.
func checkCertSerial(flag, serial string) error {
	if !isHex(serial) || len(serial)%2 != 0 || len(serial) > maxSerialLen {
		return fmt.Errorf("%s must be the merchant API certificate's serial number in hexadecimal, two digits a byte (as the merchant platform shows it), not %.64q", flag, serial)
	}
	return nil
}

// checkPublicKeyID checks the WeChat Pay public key id given to flag.
func checkPublicKeyID(flag, id string) error {
	if !strings.HasPrefix(id, wxpay.V3PublicKeyIDPrefix) || len(id) == len(wxpay.V3PublicKeyIDPrefix) || len(id) > maxSerialLen {
		return fmt.Errorf("%s must be the WeChat Pay public key's id, %s followed by digits, not %.64q", flag, wxpay.V3PublicKeyIDPrefix, id)
	}
	return nil
}

// addPublicKey adds WeChat Pay's public key from a PEM file to ring under id.
func addPublicKey(ring *wxpay.V3Keyring, id, path string) error {
	pub, _, err := readPublicKey(flagPublicKey, path, wechatpayPublicKeyName)
	if err != nil {
		return err
	}
	if id == "" {
		return nil // named as missing by the caller
	}
	return ring.Add(id, pub)
}

// readSettingFile reads the file of flag, saying which flag to fix when it
// cannot be read or is empty.
func readSettingFile(flag, path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("%s %s does not exist", flag, path)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("%s %s cannot be read by this user (permission denied)", flag, path)
	case err != nil:
		return nil, fmt.Errorf("%s %s cannot be read: %v", flag, path, unwrapPathError(err))
	case len(strings.TrimSpace(string(b))) == 0:
		return nil, fmt.Errorf("%s %s is empty", flag, path)
	}
	return b, nil
}

// unwrapPathError drops the operation and path a *fs.PathError repeats.
func unwrapPathError(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// secretFileWarning warns when a secret's file may be read by the group or
// by anyone: it works, but the key should be readable by tollgate alone.
func secretFileWarning(flag, path string) []string {
	if runtime.GOOS == "windows" {
		return nil // permissions are ACLs there; the mode bits say nothing
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm()&0o077 == 0 {
		return nil
	}
	return []string{fmt.Sprintf("%s %s can be read by its group or by others (mode %04o): it holds a secret; chmod 600 it", flag, path, fi.Mode().Perm())}
}

// readSecretFile reads a one-line secret (such as the app secret) from
// the file of flag, without its line end; the secret is never quoted.
func readSecretFile(flag, path string) (secret string, warnings []string, err error) {
	b, err := readSettingFile(flag, path)
	if err != nil {
		return "", nil, err
	}
	secret = strings.TrimRight(string(b), "\r\n")
	if strings.ContainsAny(secret, "\r\n") || strings.TrimSpace(secret) != secret {
		return "", nil, fmt.Errorf("%s %s must hold the secret alone on one line", flag, path)
	}
	return secret, secretFileWarning(flag, path), nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return s != ""
}

// wechatOAuth is the client of WeChat's web authorisation (snsapi_base)
// for WeChat Pay at --wxpay-url: the checkout opened inside WeChat sends
// the payer to --wechat-oauth-url and exchanges the code for the openid at
// --wechat-api-url with the AppSecret of --wechat-app-secret-file. It is
// nil without that file (pages inside WeChat then cannot pay with JSAPI).
func (m *Main) wechatOAuth() (*wxpay.OAuthClient, error) {
	c := m.Config
	if c.WechatAppSecretFile == "" {
		return nil, nil
	}
	secret, warnings, err := readSecretFile("--wechat-app-secret-file", c.WechatAppSecretFile)
	if err != nil {
		return nil, fmt.Errorf("serve: %w", err)
	}
	for _, w := range warnings {
		m.log.Warn(w)
	}
	return &wxpay.OAuthClient{AuthorizeURL: c.WechatOAuthURL, APIURL: c.WechatAPIURL, AppID: c.WxpayAppID, Secret: secret}, nil
}
