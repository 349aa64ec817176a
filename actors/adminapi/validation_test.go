package adminapi_test

import (
	"strings"
	"testing"

	"github.com/actormesh/actormesh/testkit"
)

// A body over MaxBodyBytes is a 413 however it is made: a value that ends within the limit followed by blanks
// past it was a 400 "more after the value" (an audit's finding), and a body of exactly the limit is read.
func TestABodyOverTheLimitIs413(t *testing.T) {
	srv := serve(t, testkit.NewNetwork(t, 1).Nodes[0]) // MaxBodyBytes 4096
	value := `{"data": "x"}`
	for _, c := range []struct {
		name, body string
		status     int
	}{
		{"a value then blanks past the limit", value + strings.Repeat(" ", 5000), 413},
		{"a value then newlines one past the limit", value + strings.Repeat("\n", 4097-len(value)), 413},
		{"a value then blanks to the limit", value + strings.Repeat(" ", 4096-len(value)), 409}, // no peer in the topic
	} {
		status, body := call(t, "POST", srv.URL+"/v1/topics/t/messages", "application/json", c.body)
		if status != c.status {
			t.Errorf("%s: %d %s, want %d", c.name, status, body, c.status)
		}
	}
}
