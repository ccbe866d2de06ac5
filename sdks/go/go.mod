module github.com/plinth-dev/plinth/sdks/go

go 1.21
