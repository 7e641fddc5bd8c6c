module github.com/livemigrate/livemigrate

go 1.26.0

require (
	github.com/anatol/devmapper.go v0.0.0-20260315162726-c47dfb6cf674
	github.com/dustin/go-humanize v1.1.0
	github.com/spf13/pflag v1.0.10
	golang.org/x/sys v0.49.0
)

require golang.org/x/crypto v0.49.0 // indirect
