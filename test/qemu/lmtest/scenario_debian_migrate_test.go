package main

import "testing"

func TestDebianMigrateParsers(t *testing.T) {
	jsonl := []byte(`{"event":"info","message":"The account \"live\" is locked"}` + "\n" + `{"event":"step-start","message":"x"}` + "\n")
	if got := string(infoMessages(jsonl)); got != "The account \"live\" is locked\n" {
		t.Errorf("infoMessages = %q", got)
	}
	fp := "256 SHA256:8hPsk8Mi1uCzC3rW/Tre+yLdVAX6C+hTfS8x2mdBUDo root@lmtest (ED25519)"
	if got := cutField(fp, 2); got != "SHA256:8hPsk8Mi1uCzC3rW/Tre+yLdVAX6C+hTfS8x2mdBUDo" {
		t.Errorf("cutField(fingerprint, 2) = %q", got)
	}
	if cutField("ssh-keygen: no such file", 9) != "" || cutField("nospace", 2) != "nospace" {
		t.Error("cutField edges")
	}
}
