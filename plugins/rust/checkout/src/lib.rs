// `provided_email` is part of the cart's shape, but this rule does not read it.
#![allow(dead_code)]

use plinth_pdk::*;
use serde::{Deserialize, Serialize};
#[derive(Deserialize)]
struct CartDataInput {
    cart_total: i32,
    is_new_customer: bool,
    provided_email: bool,
}
#[derive(Serialize)]
struct CartDataOutput {
    discount_percent: f32,
}
#[plugin_fn]
pub fn before_checkout_finalize(Json(cart): Json<CartDataInput>) -> FnResult<Json<CartDataOutput>> {
    let mut out = CartDataOutput {
        discount_percent: 0.0,
    };
    if cart.is_new_customer && cart.cart_total >= 10000 {
        out.discount_percent = 20.0;
    }
    Ok(Json(out))
}
