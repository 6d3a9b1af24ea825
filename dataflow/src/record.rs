//! The records that flow through a pipeline.

use std::any::Any;
use std::borrow::Cow;
use std::fmt;

/// The name of a field of a hash-set record: the fixed names of the readers' records are static,
/// so building a record does not allocate them.
pub type FieldName = Cow<'static, [u8]>;

/// An object owned by the callbacks' runtime (for the module: a Python object). The engine only
/// moves it around; converting it is the callbacks' business.
pub trait ObjectHandle: Any + Send + Sync {
    fn as_any(&self) -> &dyn Any;
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

impl<T: Any + Send + Sync> ObjectHandle for T {
    fn as_any(&self) -> &dyn Any {
        self
    }

    fn into_any(self: Box<Self>) -> Box<dyn Any> {
        self
    }
}

/// One record of a pipeline: the native shapes readers produce, plus opaque runtime objects.
pub enum Record {
    Null,
    /// Raw bytes; whether they are text is decided when they are converted.
    String(Vec<u8>),
    Long(i64),
    Double(f64),
    List(Vec<Record>),
    /// Named fields in the order the record exposes them (e.g. a KeysReader record).
    HashSet(Vec<(FieldName, Record)>),
    /// A record tagged with a grouping key (extractkey, groupby and repartition steps).
    KeyValue {
        key: String,
        value: Option<Box<Record>>,
    },
    /// A failed record; it travels to the end of the pipeline and lands in the errors list.
    Error(String),
    Object(Box<dyn ObjectHandle>),
}

impl Record {
    pub fn string(s: impl Into<Vec<u8>>) -> Record {
        Record::String(s.into())
    }

    pub fn object<T: Any + Send + Sync>(value: T) -> Record {
        Record::Object(Box::new(value))
    }

    pub fn is_error(&self) -> bool {
        matches!(self, Record::Error(_))
    }

    /// The object inside an [`Record::Object`], if it is a `T`.
    pub fn downcast_ref<T: Any>(&self) -> Option<&T> {
        match self {
            // Through the box: `Box<dyn ObjectHandle>` is itself an `ObjectHandle`.
            Record::Object(o) => (**o).as_any().downcast_ref::<T>(),
            _ => None,
        }
    }
}

impl fmt::Debug for Record {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Record::Null => write!(f, "Null"),
            Record::String(s) => write!(f, "String({:?})", String::from_utf8_lossy(s)),
            Record::Long(v) => write!(f, "Long({v})"),
            Record::Double(v) => write!(f, "Double({v})"),
            Record::List(l) => f.debug_tuple("List").field(l).finish(),
            Record::HashSet(h) => {
                let mut m = f.debug_map();
                for (k, v) in h {
                    m.entry(&String::from_utf8_lossy(k), v);
                }
                m.finish()
            }
            Record::KeyValue { key, value } => f
                .debug_struct("KeyValue")
                .field("key", key)
                .field("value", value)
                .finish(),
            Record::Error(e) => write!(f, "Error({e:?})"),
            Record::Object(_) => write!(f, "Object"),
        }
    }
}

impl PartialEq for Record {
    /// Structural equality; two objects are never equal (the engine cannot look inside them).
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Record::Null, Record::Null) => true,
            (Record::String(a), Record::String(b)) => a == b,
            (Record::Long(a), Record::Long(b)) => a == b,
            (Record::Double(a), Record::Double(b)) => a == b,
            (Record::List(a), Record::List(b)) => a == b,
            (Record::HashSet(a), Record::HashSet(b)) => a == b,
            (Record::KeyValue { key: ka, value: va }, Record::KeyValue { key: kb, value: vb }) => {
                ka == kb && va == vb
            }
            (Record::Error(a), Record::Error(b)) => a == b,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Record;

    #[test]
    fn objects_downcast_to_what_was_stored() {
        let r = Record::object(42u32);
        assert_eq!(r.downcast_ref::<u32>(), Some(&42));
        assert!(r.downcast_ref::<i64>().is_none());
        let Record::Object(o) = r else { panic!() };
        assert_eq!(o.into_any().downcast::<u32>().ok().map(|b| *b), Some(42));
    }
}
