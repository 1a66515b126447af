//! (being written)

use actix_web::web;

pub const ROUTES: &[(&str, &str)] = &[];

pub fn configure(_cfg: &mut web::ServiceConfig) {}
