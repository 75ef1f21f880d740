package tollgate

import "time"

// Beijing is China Standard Time (UTC+8, no daylight saving time): the
// zone of WeChat Pay's timestamps and bill days, of the merchant's
// calendar (fee months, reconciliation days) and of the payers' pages.
var Beijing = time.FixedZone("CST", 8*3600)
