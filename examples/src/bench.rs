//! The load kit's protocol (`../shared/bench/README.md`): `/echo` sends every
//! message back; `/room/:name` sends every message to every member of the
//! room, the sender included. Written with the public API only.
//! `/echo/deflate-shared` and `/echo/deflate-dedicated` echo with
//! permessage-deflate, for the compression table.

use wsway::{Accept, App, Compression, Handler, Message, Request, Response, Ws, on_message};

/// A room member: joins the topic named in the path.
struct Room;

impl Handler for Room {
    /// The room's name.
    type Data = String;

    async fn before_upgrade(&self, req: &Request) -> Result<Accept<String>, Response> {
        Ok(Accept::new(req.params()?))
    }

    async fn open(&self, ws: &mut Ws<String>) {
        let room = ws.data.clone();
        ws.subscribe(&room);
    }

    async fn message(&self, ws: &mut Ws<String>, msg: Message) {
        ws.publish(&ws.data, msg);
    }
}

/// The bench app.
pub fn app() -> App {
    let mut app = App::new();
    app.ws(
        "/echo",
        on_message(|ws, msg| {
            ws.send(msg);
        }),
    );
    app.ws("/room/:name", Room).publish_to_self(true);
    // The compression table (BENCHMARKS.md): echo with permessage-deflate,
    // in each compressor mode.
    for (path, mode) in [
        ("/echo/deflate-shared", Compression::shared()),
        ("/echo/deflate-dedicated", Compression::dedicated()),
    ] {
        app.ws(
            path,
            on_message(|ws, msg| {
                ws.send(msg);
            }),
        )
        .compression(mode);
    }
    app
}
