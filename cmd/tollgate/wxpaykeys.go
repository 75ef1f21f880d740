package main

import (
	"crypto/rsa"
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
			"API v3: serial number (hex) of the merchant API certificate of that key"},
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
	key      *rsa.PrivateKey
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
	} else if key, err := readPrivateKey(s.PrivateKey); err != nil {
		p = append(p, err.Error())
	} else {
		k.key = key
		k.warnings = append(k.warnings, secretFileWarning(flagPrivateKey, s.PrivateKey)...)
	}
	switch {
	case s.CertSerial == "":
		p = append(p, "no "+flagCertSerial+": the serial number of the merchant API certificate (in the merchant platform, or `openssl x509 -noout -serial -in apiclient_cert.pem`)")
	case !isHex(s.CertSerial):
		p = append(p, fmt.Sprintf("%s must be the merchant API certificate's serial number in hexadecimal, not %.64q", flagCertSerial, s.CertSerial))
	}
	switch {
	case s.APIv3Key != "":
		if key, err := readAPIv3Key(s.APIv3Key); err != nil {
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
		if !strings.HasPrefix(s.PublicKeyID, wxpay.V3PublicKeyIDPrefix) || len(s.PublicKeyID) == len(wxpay.V3PublicKeyIDPrefix) {
			p = append(p, fmt.Sprintf("%s must be the WeChat Pay public key's id, %s followed by digits, not %.64q", flagPublicKeyID, wxpay.V3PublicKeyIDPrefix, s.PublicKeyID))
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
	c := &wxpay.V3Client{BaseURL: s.URL, MchID: s.MchID, AppID: s.AppID, MerchantSerialNo: s.CertSerial,
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

// describe says how s reaches WeChat Pay, for a banner: no secret.
func (s merchantV3) describe() string {
	how := "WeChat Pay public key " + s.PublicKeyID
	if s.certificateMode() {
		how = "platform certificates from /v3/certificates (refreshed every 12 h)"
	}
	return fmt.Sprintf("merchant certificate serial %s, answers verified with %s", s.CertSerial, how)
}

// readPrivateKey reads the merchant's RSA private key from a PEM file.
func readPrivateKey(path string) (*rsa.PrivateKey, error) {
	b, err := readSettingFile(flagPrivateKey, path)
	if err != nil {
		return nil, err
	}
	key, err := wxpay.LoadRSAPrivateKeyPEM(b)
	if err != nil {
		// The wxpay errors name the PEM block or the key type, never the
		// key's bytes.
		return nil, fmt.Errorf("%s %s is not the merchant API private key (apiclient_key.pem, an RSA key in PEM): %s",
			flagPrivateKey, path, strings.TrimPrefix(err.Error(), "wxpay: private key: "))
	}
	if n := key.N.BitLen(); n < minMerchantKeyBits {
		return nil, fmt.Errorf("%s %s is a %d-bit RSA key: WeChat Pay's merchant API keys have at least %d bits", flagPrivateKey, path, n, minMerchantKeyBits)
	}
	return key, nil
}

// readAPIv3Key reads the APIv3 key from a file, without the line end an
// editor or echo adds. Its content is never quoted.
func readAPIv3Key(path string) (string, error) {
	b, err := readSettingFile(flagAPIv3Key, path)
	if err != nil {
		return "", err
	}
	key := strings.TrimRight(string(b), "\r\n")
	if len(key) != apiv3KeyLen {
		return "", fmt.Errorf("%s %s holds %d bytes: the APIv3 key is exactly %d characters (set in the merchant platform under API security)", flagAPIv3Key, path, len(key), apiv3KeyLen)
	}
	if strings.TrimSpace(key) != key {
		return "", fmt.Errorf("%s %s: the APIv3 key starts or ends with a space", flagAPIv3Key, path)
	}
	return key, nil
}

// addPublicKey adds WeChat Pay's public key from a PEM file to ring under id.
func addPublicKey(ring *wxpay.V3Keyring, id, path string) error {
	b, err := readSettingFile(flagPublicKey, path)
	if err != nil {
		return err
	}
	pub, err := wxpay.LoadRSAPublicKeyPEM(b)
	if err != nil {
		return fmt.Errorf("%s %s is not the WeChat Pay public key (pub_key.pem, an RSA public key in PEM): %s",
			flagPublicKey, path, strings.TrimPrefix(err.Error(), "wxpay: public key: "))
	}
	if n := pub.N.BitLen(); n < minMerchantKeyBits {
		return fmt.Errorf("%s %s is a %d-bit RSA key: WeChat Pay's keys have at least %d bits", flagPublicKey, path, n, minMerchantKeyBits)
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
