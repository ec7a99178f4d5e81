//! What the process that runs a worker hands to every attempt: settings and shared
//! clients (a warehouse pool, the object store), looked up by type. The engine does
//! not know what they are; the task kinds that put them in take them out.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

/// A map from a type to one shared value of it.
#[derive(Clone, Default)]
pub struct Resources {
    values: Arc<HashMap<TypeId, Arc<dyn Any + Send + Sync>>>,
}

impl fmt::Debug for Resources {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Resources")
            .field("values", &self.values.len())
            .finish()
    }
}

impl Resources {
    /// No resources: task kinds fall back to their built-in defaults.
    pub fn new() -> Self {
        Self::default()
    }

    /// These resources and `value` (replacing an earlier value of its type).
    pub fn with<T: Any + Send + Sync>(self, value: T) -> Self {
        let mut values = (*self.values).clone();
        values.insert(TypeId::of::<T>(), Arc::new(value));
        Self {
            values: Arc::new(values),
        }
    }

    /// The value of type `T`, if the process put one in.
    pub fn get<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        self.values
            .get(&TypeId::of::<T>())
            .and_then(|v| Arc::clone(v).downcast::<T>().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::Resources;

    #[test]
    fn a_value_is_found_by_its_type() {
        let r = Resources::new().with(7u32).with(String::from("lake"));
        assert_eq!(*r.get::<u32>().unwrap(), 7);
        assert_eq!(r.get::<String>().unwrap().as_str(), "lake");
        assert!(r.get::<i64>().is_none());
    }
}
