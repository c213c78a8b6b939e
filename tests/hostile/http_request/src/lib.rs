//! Hostile: a query module that imports `wasi:http/outgoing-handler` to post data out.
//! Expected: ForbiddenImports at inspect/publish and at load.
use cleanroom_guest::query;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{Fields, OutgoingRequest};
struct M;
impl query::Guest for M {
    fn run(_: String) -> Result<(), String> {
        let req = OutgoingRequest::new(Fields::new());
        outgoing_handler::handle(req, None).map_err(|e| format!("{e:?}"))?;
        Ok(())
    }
}
query::export!(M);
