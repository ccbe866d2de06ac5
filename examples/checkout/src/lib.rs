//! A shop's checkout that lets a plug-in decide the discount on each cart, through the
//! plug-in function `before_checkout_finalize` (plugins/rust/checkout).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use plinth::{Json, Manifest, Plugin, Wasm};
use serde::{Deserialize, Serialize};

/// What the shop tells the plug-in about a cart.
#[derive(Debug, Clone, Serialize)]
pub struct Cart {
    /// In cents.
    pub cart_total: i32,
    pub is_new_customer: bool,
    pub provided_email: bool,
}

/// What the plug-in answers.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
pub struct Discount {
    pub discount_percent: f32,
}

/// The carts the example checks out: a new customer and a returning one, 120.00 each.
pub fn sample_carts() -> Vec<(&'static str, Cart)> {
    let cart = |is_new_customer| Cart {
        cart_total: 12000,
        is_new_customer,
        provided_email: true,
    };
    vec![
        ("new customer", cart(true)),
        ("returning customer", cart(false)),
    ]
}

/// Where scripts/build-plugins.sh puts the plug-in: under the current directory when run from
/// the repository root, else next to this crate's sources.
pub fn default_plugin_path() -> PathBuf {
    let relative = PathBuf::from("target/wasm-plugins/checkout.wasm");
    if relative.exists() {
        return relative;
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/wasm-plugins/checkout.wasm")
}

/// Asks the plug-in for each cart's discount.
pub fn discounts(wasm: &Path, carts: &[Cart]) -> plinth::Result<Vec<Discount>> {
    // The plug-in needs nothing from the host: no WASI, no HTTP, no host functions.
    let mut plugin = Plugin::new(Manifest::new([Wasm::file(wasm)]), [], false)?;
    carts
        .iter()
        .map(|cart| {
            let Json(d) = plugin.call("before_checkout_finalize", Json(cart))?;
            Ok(d)
        })
        .collect()
}

/// Checks out the sample carts and describes what each customer pays.
pub fn run(wasm: &Path) -> plinth::Result<String> {
    let carts = sample_carts();
    let only_carts: Vec<Cart> = carts.iter().map(|(_, c)| c.clone()).collect();
    let found = discounts(wasm, &only_carts)?;
    let mut report = String::new();
    for ((who, cart), d) in carts.iter().zip(found) {
        let total = f64::from(cart.cart_total) / 100.0;
        let pays = total * (1.0 - f64::from(d.discount_percent) / 100.0);
        writeln!(
            report,
            "{who}: cart {total:.2}, discount {}%, pays {pays:.2}",
            d.discount_percent
        )
        .expect("writing to a String");
    }
    Ok(report)
}
