package main

import "testing"

func TestDebianMigrateParsers(t *testing.T) {
	jsonl := []byte(`{"event":"info","message":"The account \"live\" is locked"}` + "\n" + `{"event":"step-start","message":"x"}` + "\n")
	if got := string(infoMessages(jsonl)); got != "The account \"live\" is locked\n" {
		t.Errorf("infoMessages = %q", got)
	}
}
