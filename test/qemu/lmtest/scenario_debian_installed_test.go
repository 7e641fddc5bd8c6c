package main

import "testing"

func TestCutWords(t *testing.T) {
	if got := cutWords("live L 2026-12-02 0 99999 7 -1", 2); got != "live L" {
		t.Errorf("cutWords = %q", got)
	}
}
