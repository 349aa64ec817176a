package session

import (
	"fmt"
	"math"
	"time"
)

// Field is a numeric field of a component's Config, named as the Config names it, for CheckPositive.
type Field struct {
	Name  string
	Value any // int, int64, uint64, time.Duration or float64
}

// CheckPositive returns an error naming the first of fields that is not positive: a float must also be finite (a
// NaN rate passed a "<= 0" check and turned a rate limiter off). It returns nil when all are.
func CheckPositive(fields ...Field) error {
	for _, f := range fields {
		var ok bool
		switch v := f.Value.(type) {
		case int:
			ok = v > 0
		case int64:
			ok = v > 0
		case uint64:
			ok = v > 0
		case time.Duration:
			ok = v > 0
		case float64:
			ok = v > 0 && !math.IsInf(v, 1)
		default:
			return fmt.Errorf("%s: a %T is not a number CheckPositive knows", f.Name, f.Value)
		}
		if !ok {
			return fmt.Errorf("%s must be positive, got %v", f.Name, f.Value)
		}
	}
	return nil
}
