package session

import (
	"math"
	"strings"
	"testing"
	"time"
)

// CheckPositive takes positive numbers of each type it knows, and names the first field that is zero, negative,
// NaN or +Inf, or of a type it does not know.
func TestCheckPositive(t *testing.T) {
	if err := CheckPositive(Field{"A", 1}, Field{"B", int64(1)}, Field{"C", uint64(1)}, Field{"D", time.Nanosecond},
		Field{"E", 0.5}, Field{"F", math.MaxFloat64}); err != nil {
		t.Fatalf("positive fields: %v", err)
	}
	for _, bad := range []any{0, -1, int64(0), int64(-1), uint64(0), time.Duration(0), -time.Second, 0.0, -0.5,
		math.NaN(), math.Inf(1), math.Inf(-1), int32(1), float32(1), "1"} {
		err := CheckPositive(Field{"Good", 1}, Field{"Bad", bad}, Field{"Later", 0})
		if err == nil || !strings.HasPrefix(err.Error(), "Bad") {
			t.Errorf("%T %v: error %v, want one naming Bad", bad, bad, err)
		}
	}
}
