// A shop host in Go that asks the checkout plug-in for discounts.
//
//	go run . [path/to/checkout.wasm]
package main

import (
	"fmt"
	"log"
	"os"
	"path/filepath"

	plinth "github.com/plinth-dev/plinth/sdks/go"
)

type cart struct {
	CartTotal     int  `json:"cart_total"` // in cents
	IsNewCustomer bool `json:"is_new_customer"`
	ProvidedEmail bool `json:"provided_email"`
}

// discount asks the plug-in for the discount, in percent, of a cart.
func discount(p *plinth.Plugin, c cart) (float64, error) {
	var out struct {
		DiscountPercent float64 `json:"discount_percent"`
	}
	err := p.CallJSON("before_checkout_finalize", c, &out)
	return out.DiscountPercent, err
}

// pluginPath is args[0], else target/wasm-plugins/checkout.wasm in the repository around
// the working directory.
func pluginPath(args []string) string {
	if len(args) > 0 {
		return args[0]
	}
	dir, _ := os.Getwd()
	for {
		p := filepath.Join(dir, "target", "wasm-plugins", "checkout.wasm")
		if _, err := os.Stat(p); err == nil || dir == filepath.Dir(dir) {
			return p
		}
		dir = filepath.Dir(dir)
	}
}

func main() {
	p, err := plinth.NewPluginFromFile(pluginPath(os.Args[1:]))
	if err != nil {
		log.Fatal(err)
	}
	defer p.Close()
	for _, c := range []struct {
		who  string
		cart cart
	}{
		{"new customer", cart{12000, true, true}},
		{"returning customer", cart{12000, false, true}},
	} {
		d, err := discount(p, c.cart)
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("%s, %d cents: %.1f%% discount\n", c.who, c.cart.CartTotal, d)
	}
}
