package wxpay

// OpenV3GCMForTest exposes the AES-GCM step of DecryptV3Resource so that the
// external tests can run it on the third-party vectors, whose 16-byte keys
// DecryptV3Resource itself refuses.
var OpenV3GCMForTest = openGCM
