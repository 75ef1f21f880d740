// Package wxpay speaks the WeChat Pay merchant protocol: API v2 (XML bodies,
// MD5 or HMAC-SHA256 signatures) and API v3 (JSON bodies, RSA-SHA256
// request signatures, AEAD_AES_256_GCM notification resources). It holds
// clients, signers, verifiers and notification decoders, and no business
// logic: it knows nothing of ledgers, accounts or credits.
//
// Identifiers for API v2 carry "V2" in their names and live in v2*.go;
// those for API v3 carry "V3" and live in v3*.go. Errors shared by both are
// in errors.go. OAuthClient (oauth.go) is not WeChat Pay's but the Official
// Account's web authorisation, which gives the openid a JSAPI order needs.
package wxpay
