//! Where a ticket is: the property and unit a CreateTicket names, looked up once per
//! replica. What is kept never changes after it is written (no call deletes a property,
//! and a unit's property, building and label are fixed when it is added), so a replica
//! may keep it for good: only what was found is kept, so a unit added a moment ago is
//! found at its first use.

use std::collections::HashMap;
use std::sync::RwLock;

use propdesk_store::entity::{property, unit};
use propdesk_store::{Store, StoreError};

/// The fixed facts of a unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    pub unit_id: String,
    pub property_id: String,
    pub building_id: String,
    pub label: String,
}

/// Past this many entries a map starts afresh, so memory stays bounded.
const MOST: usize = 50_000;

/// What was found, by id.
#[derive(Debug)]
struct Kept<V>(RwLock<HashMap<String, V>>);

impl<V> Default for Kept<V> {
    fn default() -> Self {
        Kept(RwLock::default())
    }
}

impl<V: Clone> Kept<V> {
    fn get(&self, id: &str) -> Option<V> {
        self.0.read().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    fn keep(&self, id: &str, value: V) {
        let mut known = self.0.write().unwrap_or_else(|p| p.into_inner());
        if known.len() >= MOST {
            known.clear();
        }
        known.insert(id.to_owned(), value);
    }
}

#[derive(Debug, Default)]
pub struct Places {
    properties: Kept<()>,
    units: Kept<Place>,
}

impl Places {
    /// Whether the property exists.
    pub async fn property_exists(&self, store: &Store, id: &str) -> Result<bool, StoreError> {
        if self.properties.get(id).is_some() {
            return Ok(true);
        }
        let found = store.find::<property::Model>(id).await?.is_some();
        if found {
            self.properties.keep(id, ());
        }
        Ok(found)
    }

    /// The unit, if it exists.
    pub async fn unit(&self, store: &Store, id: &str) -> Result<Option<Place>, StoreError> {
        if let Some(place) = self.units.get(id) {
            return Ok(Some(place));
        }
        let Some(found) = store.find::<unit::Model>(id).await? else { return Ok(None) };
        let place = Place {
            unit_id: found.id,
            property_id: found.property_id,
            building_id: found.building_id,
            label: found.label,
        };
        self.units.keep(id, place.clone());
        Ok(Some(place))
    }
}
