//! The example host against the real checkout plug-in (built by scripts/build-plugins.sh).

use plinth_example_checkout::{default_plugin_path, discounts, run, sample_carts, Cart};

fn plugin() -> std::path::PathBuf {
    let path = default_plugin_path();
    assert!(
        path.exists(),
        "{} is missing: run `bash scripts/build-plugins.sh` first",
        path.display()
    );
    path
}

#[test]
fn new_customers_get_20_percent_and_returning_ones_nothing() {
    let carts: Vec<Cart> = sample_carts().into_iter().map(|(_, c)| c).collect();
    let found: Vec<f32> = discounts(&plugin(), &carts)
        .unwrap()
        .iter()
        .map(|d| d.discount_percent)
        .collect();
    assert_eq!(found, [20.0, 0.0]);
}

#[test]
fn the_report_shows_what_each_customer_pays() {
    assert_eq!(
        run(&plugin()).unwrap(),
        "new customer: cart 120.00, discount 20%, pays 96.00\n\
         returning customer: cart 120.00, discount 0%, pays 120.00\n"
    );
}

#[test]
fn a_missing_plugin_is_an_error() {
    let err = run(std::path::Path::new("no/such/checkout.wasm")).unwrap_err();
    assert!(err.to_string().contains("checkout.wasm"), "{err}");
}
