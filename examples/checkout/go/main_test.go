package main

import (
	"testing"

	plinth "github.com/plinth-dev/plinth/sdks/go"
)

func TestDiscounts(t *testing.T) {
	p, err := plinth.NewPluginFromFile(pluginPath(nil))
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	for c, want := range map[cart]float64{{12000, true, true}: 20.0, {12000, false, true}: 0.0} {
		if got, err := discount(p, c); err != nil || got != want {
			t.Errorf("%+v: got %v, %v; want %v", c, got, err, want)
		}
	}
}
