//! A store owner's webhook handler (examples/webhooks). The host calls `handle` with an event
//! such as `{"event":"order_created","order":{"id":"o1","customer":"c1","total_cents":1200}}`;
//! the handler asks the host's store about the customer through the host function
//! `store_query` and answers with the actions the store should take.

use plinth_pdk::*;
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Event {
    event: String,
    order: Option<Order>,
}

#[derive(Deserialize)]
struct Order {
    customer: String,
    total_cents: i64,
}

/// A query the host runs for us: a name and its parameters, never SQL.
#[derive(Serialize)]
struct Query {
    query: String,
    customer: String,
}

/// The customer's orders before this one.
#[derive(Deserialize)]
struct CustomerStats {
    orders: i64,
    spent_cents: i64,
}

#[derive(Serialize, Default)]
struct Actions {
    actions: Vec<Action>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Action {
    SendEmail { template: &'static str },
    TagCustomer { tag: &'static str },
    NotifyStaff { reason: &'static str },
}

#[host_fn]
extern "ExtismHost" {
    fn store_query(query: Json<Query>) -> Json<CustomerStats>;
}

/// A customer who has spent this much, this order included, is tagged `vip` (1,000.00).
const VIP_CENTS: i64 = 100_000;
/// An order this large is worth a look from the staff (500.00).
const LARGE_ORDER_CENTS: i64 = 50_000;

#[plugin_fn]
pub fn handle(Json(event): Json<Event>) -> FnResult<Json<Actions>> {
    let mut out = Actions::default();
    if event.event != "order_created" {
        // Other events need nothing from this store.
        return Ok(Json(out));
    }
    let order = event
        .order
        .ok_or_else(|| Error::msg("order_created needs an `order` object"))?;
    let query = Query {
        query: "customer_stats".into(),
        customer: order.customer,
    };
    // SAFETY: the host provides `store_query` with this signature, or the plug-in does not load.
    let Json(stats) = unsafe { store_query(Json(query))? };
    if stats.orders == 0 {
        out.actions.push(Action::SendEmail {
            template: "welcome",
        });
    }
    let spent = stats.spent_cents + order.total_cents;
    if spent >= VIP_CENTS && stats.spent_cents < VIP_CENTS {
        out.actions.push(Action::TagCustomer { tag: "vip" });
    }
    if order.total_cents >= LARGE_ORDER_CENTS {
        out.actions.push(Action::NotifyStaff {
            reason: "large_order",
        });
    }
    Ok(Json(out))
}
