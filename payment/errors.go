package payment

import "tollgate"

// ParamError is a request refused before anything was sent to WeChat Pay
// because a parameter is missing or malformed (the device fingerprint,
// the amount, the package). Its tollgate code is EINVALID and its public
// code, shown to API clients, is "PARAM_ERROR" (httpapi.CodedError).
type ParamError struct {
	Param   string // the request field, e.g. "device_fingerprint"
	Message string
}

// Error implements error.
func (e *ParamError) Error() string { return "payment: PARAM_ERROR: " + e.Message }

// PublicCode implements httpapi.CodedError.
func (e *ParamError) PublicCode() string { return "PARAM_ERROR" }

// PublicParam implements httpapi.ParamNamer: the field shown as the
// error's "param".
func (e *ParamError) PublicParam() string { return e.Param }

// Unwrap gives tollgate.ErrorCode the EINVALID code and the message.
func (e *ParamError) Unwrap() error {
	return &tollgate.Error{Code: tollgate.EINVALID, Message: e.Message, Op: "payment"}
}

func paramError(param, msg string) error { return &ParamError{Param: param, Message: msg} }
