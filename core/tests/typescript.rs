//! The event layer's TypeScript contract (`Events::typescript`): what the
//! browser's typings check against says what the wire carries.
#![cfg(feature = "typescript")]

use serde::{Deserialize, Serialize};
use ts_rs::TS;
use wsway::{EventError, Events, Fragment};

// Read by serde only: the contract is what this test is about.
#[allow(dead_code)]
#[derive(Deserialize, TS)]
#[serde(rename_all = "camelCase")]
struct NewOrder {
    item_id: u64,
    note: Option<String>,
    lines: Vec<Line>,
}

/// One line of an order.
///
/// Not in the contract: this paragraph is for Rust readers.
#[derive(Serialize, Deserialize, TS)]
struct Line {
    qty: u32,
    kind: Kind,
}

#[derive(Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
enum Kind {
    Box,
    Pallet,
}

#[derive(Serialize, TS)]
struct Placed {
    id: u64,
}

#[derive(Serialize, TS)]
struct Shipped {
    id: u64,
    lines: Vec<Line>,
}

fn events() -> Events {
    let mut events = Events::new();
    events.group("orders", |orders| {
        orders
            .on("place", |_ws, o: NewOrder| {
                Ok::<_, EventError>(Placed { id: o.item_id })
            })
            .errors(["out_of_stock", "closed"]);
        orders
            .on("count", |_ws, (): ()| Ok::<_, EventError>(3u64))
            .typed();
        orders
            .on("panel", |_ws, (): ()| {
                Ok::<_, EventError>(Fragment::new("<p>x</p>"))
            })
            .targets(["#panel"])
            .typed();
        // Left out of the contract: not marked typed.
        orders.on("secret", |_ws, (): ()| Ok::<_, EventError>(()));
    });
    events.emits::<Shipped>("orders:shipped");
    events
}

#[test]
fn the_contract_says_what_the_wire_carries() {
    let ts = events().typescript("the shop");
    let has = |s: &str| assert!(ts.contains(s), "no `{s}` in:\n{ts}");
    // serde's renames, u64 as a JSON number, options, nested types once.
    has("export type NewOrder = { itemId: number, note: string | null, lines: Array<Line>, };");
    has("export type Line = { qty: number, kind: Kind, };");
    has(r#"export type Kind = "box" | "pallet";"#);
    assert_eq!(ts.matches("export type Line =").count(), 1, "{ts}");
    // Only the first paragraph of a type's docs.
    has("/**\n * One line of an order.\n */\nexport type Line");
    assert!(!ts.contains("Rust readers"), "{ts}");
    // Calls in name order, with their error codes; a call taking `()`
    // takes `null`; untyped calls are not there.
    has(r#"  "orders:count": { data: null; reply: number; errors: never };"#);
    has(r#"  "orders:panel": { data: null; reply: Fragment; errors: never };"#);
    has(
        r#"  "orders:place": { data: NewOrder; reply: Placed; errors: "out_of_stock" | "closed" };"#,
    );
    assert!(!ts.contains("orders:secret"), "{ts}");
    assert!(ts.find("orders:count") < ts.find("orders:place"), "{ts}");
    has(r#"  "orders:shipped": Shipped;"#);
    has("export type Contract = {\n  calls: Calls;\n  pushes: Pushes;\n};");
}
