module github.com/plinth-dev/plinth/examples/checkout/go

go 1.21

require github.com/plinth-dev/plinth/sdks/go v0.0.0

replace github.com/plinth-dev/plinth/sdks/go => ../../../sdks/go
