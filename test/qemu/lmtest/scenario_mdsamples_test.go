package main

import "testing"

func TestLiveLegOfDetail(t *testing.T) {
	detail := "    Number   Major   Minor   RaidDevice State\n       0     253        0        0      active sync   /dev/dm-0\n       2     254        0        1      active sync   /dev/vda\n"
	if got := liveLegOfDetail(detail); got != "/dev/dm-0" {
		t.Errorf("liveLegOfDetail = %q", got)
	}
	if got := liveLegOfDetail("       2     254        0        1      active sync   /dev/vda\n"); got != "" {
		t.Errorf("liveLegOfDetail without a dm leg = %q", got)
	}
}
