package routing

import "google.golang.org/protobuf/proto"

// refusal names, for the logs, why Register refused e's registration from the connection address from (it
// reported false): it reads the state a refused Register leaves as it was, in Register's order.
func (r *topicRegistry) refusal(e Entry, from string) string {
	if from == "" {
		from = e.Addr
	}
	g, ok := r.groupOf(from)
	switch {
	case !ok:
		return "no IP group for the registration's address"
	case e.Record == nil || proto.Size(e.Record) > MaxRegisteredRecordSize:
		return "record over MaxRegisteredRecordSize"
	case g != (ipGroup{}) && r.groups[g] >= r.perGroupAll:
		return "the IP group of its connection holds the most registrations allowed over all topics"
	case g != (ipGroup{}):
		return "the IP group of its connection holds the most registrations allowed on the topic"
	}
	return "no room for another topic"
}
