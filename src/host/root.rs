//! Root context: loads the configuration once per VM and creates one
//! [`Exchange`] per HTTP stream.

use super::http::Exchange;
use super::metrics::Metrics;
use crate::config::{self, Plan};
use proxy_wasm::hostcalls;
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{BufferType, ContextType};
use std::rc::Rc;

/// Per-VM root context holding the compiled plan.
#[derive(Default)]
pub struct Root {
    loaded: Option<(Rc<Plan>, Rc<Metrics>)>,
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, size: usize) -> bool {
        let bytes = match hostcalls::get_buffer(BufferType::PluginConfiguration, 0, size) {
            Ok(Some(b)) => b,
            _ => Vec::new(),
        };
        match config::load(&bytes) {
            Ok(plan) => {
                let metrics = Metrics::define(&plan);
                for warning in &plan.warnings {
                    log::warn!("{warning}");
                }
                log::info!(
                    "configuration loaded: {} experiment(s)",
                    plan.experiments.len()
                );
                self.loaded = Some((Rc::new(plan), Rc::new(metrics)));
                true
            }
            Err(errors) => {
                log::error!("configuration rejected: {errors}");
                false
            }
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        Some(Box::new(Exchange::new(self.loaded.clone())))
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}
