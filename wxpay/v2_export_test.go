package wxpay

// EncryptECBForTest and DecryptECBForTest expose the raw AES-ECB helpers so
// that the external tests can check them against the docs/WECHATPAY.md §6.1 V2-5
// vector, whose key is used as is rather than derived from an API key.
var (
	EncryptECBForTest = encryptECB
	DecryptECBForTest = decryptECB
)
