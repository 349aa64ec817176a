package testkit

import "testing"

func TestParseStatCPUReadsTotalAndSteal(t *testing.T) {
	cases := []struct {
		name         string
		stat         string
		total, steal uint64
	}{
		{"kvm guest", "cpu  2798990 0 340743 10880373 7077 0 17666 27725 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n",
			2798990 + 340743 + 10880373 + 7077 + 17666 + 27725, 27725},
		{"guest times not counted twice", "cpu  10 0 5 100 0 0 0 2 7 3\n", 117, 2},
		{"no steal column", "cpu  10 0 5 100 0 0 0\n", 0, 0},
		{"not the cpu line", "intr 1 2 3 4 5 6 7 8 9\n", 0, 0},
		{"garbage", "cpu  10 x 5 100 0 0 0 2\n", 0, 0},
		{"empty", "", 0, 0},
	}
	for _, c := range cases {
		if total, steal := parseStatCPU(c.stat); total != c.total || steal != c.steal {
			t.Errorf("%s: got total %d steal %d, want %d and %d", c.name, total, steal, c.total, c.steal)
		}
	}
}

func TestReadUsageCountsThisProcess(t *testing.T) {
	u0 := readUsage()
	x := 0
	for i := range 20_000_000 {
		x ^= i * i
	}
	u1 := readUsage()
	if x == 1 || u1.cpu() <= u0.cpu() || u1.user < u0.user || u1.system < u0.system || u1.voluntary < u0.voluntary {
		t.Fatalf("usage did not advance over a busy loop: %+v then %+v", u0, u1)
	}
}
