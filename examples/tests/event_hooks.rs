//! The event layer's hooks, through `wsway::testing`: data built from the
//! request, async open and close, app state, errors with data, `?`-only
//! handlers, and server requests that wait for the client's reply (with
//! their timeout). Every body runs on the test server's threads and on
//! tokio, smol and async-std.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod common;

use futures_lite::future::block_on;

use examples::served_tests;
use serde_json::{Value, json};
use wsway::testing::{TestClient, TestServer};
use wsway::{App, CloseCode, EventError, Events, Request, StatusCode};

#[derive(Clone, Default)]
struct Calls(Arc<AtomicU64>);

/// What the close hook saw.
#[derive(Clone, Default)]
struct Closed(Arc<Mutex<Vec<(String, u16)>>>);

#[derive(Default)]
struct Member {
    room: String,
    name: String,
    answers: Vec<String>,
}

fn app(closed: &Closed) -> App {
    let mut events = Events::<Member>::new();
    events.before_upgrade(|req: &Request| {
        let name = req.value::<String>().cloned().unwrap_or_default();
        // The app's state is there before the upgrade too.
        req.state::<Calls>().0.fetch_add(1, Ordering::SeqCst);
        Ok(Member {
            room: req.params()?,
            name,
            answers: Vec::new(),
        })
    });
    events.on_open_async(|ws| {
        Box::pin(async move {
            futures_lite::future::yield_now().await;
            let room = ws.data.room.clone();
            ws.subscribe(&room);
            let _ = ws.emit("welcome", &room);
        })
    });
    events.on_close_async(|ws, code, _reason| {
        Box::pin(async move {
            futures_lite::future::yield_now().await;
            let closed = ws.state::<Closed>().clone();
            closed
                .0
                .lock()
                .unwrap()
                .push((ws.data.name.clone(), code.0));
        })
    });
    events.on("count", |ws, (): ()| {
        Ok(ws.state::<Calls>().0.fetch_add(1, Ordering::SeqCst) + 1)
    });
    // The only error path is `?`: no annotation needed.
    events.on("double", |_ws, text: String| {
        let n: u32 = text.parse()?;
        Ok(n * 2)
    });
    events.on("claim", |ws, seat: u32| {
        if seat == 1 {
            let taken = EventError::new("taken", "seat 1 is taken");
            return Err(taken.with_data(&json!({ "free": [2, 3], "by": ws.data.name })));
        }
        Ok(seat)
    });
    events.on("ask", |ws, (timeout_ms, kind): (u64, String)| {
        let timeout = Duration::from_millis(timeout_ms);
        let reply = move |ws: &mut wsway::Ws<Member>, got: Result<bool, EventError>| {
            let said = match got {
                Ok(yes) => format!("{kind}: ok {yes}"),
                Err(e) => format!("{kind}: {} {}", e.code(), e.data().unwrap_or("-")),
            };
            ws.data.answers.push(said.clone());
            let _ = ws.emit("answered", &said);
        };
        ws.emit_with_ack("question", &"sure?", timeout, reply)?;
        Ok(())
    });
    events.on("answers", |ws, (): ()| Ok(ws.data.answers.clone()));
    let mut app = App::new();
    app.state(Calls::default());
    app.state(closed.clone());
    app.ws("/rooms/:room", events)
        .middleware(wsway::middleware::from_fn(|req: &mut Request| {
            let name = req.header("x-name").unwrap_or("anon").to_owned();
            req.insert(name);
            Ok(())
        }));
    app
}

fn join(server: &TestServer, room: &str, name: &str) -> TestClient {
    server
        .request(&format!("/rooms/{room}"))
        .header("x-name", name)
        .protocols(&["wsway.v1"])
        .connect()
        .unwrap()
}

served_tests! {
    fn data_comes_from_the_request_and_a_rejection_is_the_response(served) {
        let server = served.serve(app(&Closed::default()));
        let mut ann = join(&server, "lobby", "ann");
        // The async open hook subscribed and welcomed before anything else.
        assert_eq!(ann.next_push::<String>("welcome").unwrap(), "lobby");
        let err = ann.emit::<Value>("claim", &1).unwrap_err();
        let e = err.rejection().unwrap_or_else(|| panic!("{err}"));
        assert_eq!((e.code(), e.message()), ("taken", "seat 1 is taken"));
        // The middleware's value reached the connection's data.
        assert_eq!(e.data(), Some(r#"{"by":"ann","free":[2,3]}"#));
        assert_eq!(ann.emit::<u32>("claim", &2).unwrap(), 2);
    }

    fn the_app_state_is_shared_by_requests_and_connections(served) {
        let server = served.serve(app(&Closed::default()));
        let mut ann = join(&server, "a", "ann");
        let mut bob = join(&server, "b", "bob");
        // Two upgrades counted, then each call.
        assert_eq!(ann.emit::<u64>("count", &()).unwrap(), 3);
        assert_eq!(bob.emit::<u64>("count", &()).unwrap(), 4);
    }

    fn a_question_mark_handler_compiles_and_its_errors_are_internal(served) {
        let server = served.serve(app(&Closed::default()));
        let mut ann = join(&server, "a", "ann");
        assert_eq!(ann.emit::<u32>("double", &"21").unwrap(), 42);
        let err = ann.emit::<u32>("double", &"x").unwrap_err();
        let e = err.rejection().unwrap_or_else(|| panic!("{err}"));
        assert_eq!((e.code(), e.data()), ("internal", None));
    }

    fn the_close_hook_awaits_and_sees_the_data(served) {
        let closed = Closed::default();
        let server = served.serve(app(&closed));
        let mut ann = join(&server, "a", "ann");
        ann.close(CloseCode(4000), "bye").unwrap();
        // The hook runs after the close handshake: wait for it, bounded.
        block_on(common::eventually("the close hook", || {
            closed.0.lock().unwrap().contains(&("ann".to_owned(), 4000))
        }));
    }

    fn a_server_request_gets_the_ack_an_error_bad_data_or_a_timeout(served) {
        let server = served.serve(app(&Closed::default()));
        let mut ann = join(&server, "a", "ann");
        ann.emit::<()>("ask", &(5_000, "yes")).unwrap();
        ann.answer("question", |q: String| {
            assert_eq!(q, "sure?");
            Ok(true)
        })
        .unwrap();
        assert_eq!(ann.next_push::<String>("answered").unwrap(), "yes: ok true");

        ann.emit::<()>("ask", &(5_000, "refused")).unwrap();
        ann.answer("question", |_: String| {
            Err::<(), _>(EventError::new("busy", "later").with_data(&3))
        })
        .unwrap();
        assert_eq!(
            ann.next_push::<String>("answered").unwrap(),
            "refused: busy 3"
        );

        ann.emit::<()>("ask", &(5_000, "odd")).unwrap();
        ann.answer("question", |_: String| Ok("not a bool"))
            .unwrap();
        let said = ann.next_push::<String>("answered").unwrap();
        assert!(said.starts_with("odd: bad_data"), "{said}");

        ann.emit::<()>("ask", &(30, "silent")).unwrap();
        let said = ann.next_push::<String>("answered").unwrap();
        assert_eq!(said, "silent: timeout -");
        // A reply after the timeout is ignored: the callback ran once.
        ann.answer("question", |_: String| Ok(true)).unwrap();
        let answers = ann.emit::<Vec<String>>("answers", &()).unwrap();
        assert_eq!(answers.len(), 4, "{answers:?}");
    }

    fn a_bad_room_param_type_is_a_400(served) {
        let mut events = Events::<u32>::new();
        events.before_upgrade(|req| Ok(req.params::<u32>()?));
        let mut app = App::new();
        app.ws("/n/:n", events);
        let server = served.serve(app);
        let err = server.connect("/n/x").unwrap_err();
        assert_eq!(err.status(), Some(StatusCode::BAD_REQUEST), "{err}");
        assert!(server.connect("/n/7").is_ok());
    }
}
