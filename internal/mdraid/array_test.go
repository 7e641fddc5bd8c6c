package mdraid

import "testing"

func TestAlignKiB(t *testing.T) {
	for _, c := range []struct{ kib, lbs, want uint64 }{
		{3930095, 4096, 3930092}, // the Debian VM's odd root partition, zram-era array
		{3930095, 512, 3930095},
		{3930096, 4096, 3930096},
		{3, 4096, 0},
		{1023, 0, 1023},
	} {
		if got := AlignKiB(c.kib, c.lbs); got != c.want {
			t.Errorf("AlignKiB(%d, %d) = %d, want %d", c.kib, c.lbs, got, c.want)
		}
	}
}
