// Package httpapi is tollgate's HTTP surface: routing, authentication, one
// error table mapping tollgate error codes to HTTP statuses and OpenAI's
// error shape, request ids, body limits, health and metrics endpoints. It
// holds no money rules: handlers call the payment, ledger and gateway
// services.
package httpapi
