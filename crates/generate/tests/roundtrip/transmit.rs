//! Host-written futures and streams for the round trips of random async
//! worlds, and reading back the ones that come out.
//!
//! wasmtime 48's host makes a future or stream only for a payload type
//! fixed at compile time (`FutureReader<T>`, `StreamReader<T>`), so the
//! host covers the payloads it can name: none, every scalar and `string`,
//! a `list` or `option` of one of those, and another future or stream
//! ([`Payload`]; records, variants and the rest have names a Rust type
//! would have to carry, so the peers of roundtrip/driver.rs write and read
//! those). Values cross as `Val`s; [`on_payload`] picks the Rust type for a
//! WIT one.
//!
//! The host writes with [`Give`], which keeps its items until a read takes
//! them: those never taken (the reader left) go to an [`Unsent`] list, so
//! that the futures and streams among them can be closed (a Rust value
//! dropped would leave its handle in the store).

use anyhow::{Result, anyhow};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use wasmtime::component::{
    Accessor, ComponentType, Destination, FutureAny, FutureConsumer, FutureReader, Lift, Lower,
    Source, StreamAny, StreamConsumer, StreamProducer, StreamReader, StreamResult, Val, VecBuffer,
};
use wasmtime::{AsContextMut, StoreContextMut};
use wit_parser::{Resolve, Type, TypeDefKind};

/// A payload type the host can name, and its `Val` form.
pub trait Payload: ComponentType + Lift + Lower + Send + Sync + Unpin + Sized + 'static {
    fn to_val(self) -> Val;
    fn from_val(v: &Val) -> Option<Self>;
}

impl Payload for () {
    fn to_val(self) -> Val {
        Val::Tuple(Vec::new())
    }
    fn from_val(v: &Val) -> Option<Self> {
        matches!(v, Val::Tuple(t) if t.is_empty()).then_some(())
    }
}

macro_rules! payloads {
    ($($rust:ty => $val:ident),* $(,)?) => {$(
        impl Payload for $rust {
            fn to_val(self) -> Val {
                Val::$val(self)
            }
            fn from_val(v: &Val) -> Option<Self> {
                match v {
                    Val::$val(x) => Some(x.clone()),
                    _ => None,
                }
            }
        }
    )*};
}

payloads!(
    bool => Bool, u8 => U8, i8 => S8, u16 => U16, i16 => S16, u32 => U32, i32 => S32,
    u64 => U64, i64 => S64, f32 => Float32, f64 => Float64, char => Char, String => String,
    // A future's or stream's items are handles, whatever their own payload.
    StreamAny => Stream, FutureAny => Future,
);

impl<T: Payload> Payload for Vec<T> {
    fn to_val(self) -> Val {
        Val::List(self.into_iter().map(T::to_val).collect())
    }
    fn from_val(v: &Val) -> Option<Self> {
        match v {
            Val::List(items) => items.iter().map(T::from_val).collect(),
            _ => None,
        }
    }
}

impl<T: Payload> Payload for Option<T> {
    fn to_val(self) -> Val {
        Val::Option(self.map(|x| Box::new(x.to_val())))
    }
    fn from_val(v: &Val) -> Option<Self> {
        match v {
            Val::Option(None) => Some(None),
            Val::Option(Some(x)) => T::from_val(x).map(Some),
            _ => None,
        }
    }
}

/// Something to do with the Rust type of a payload.
pub trait OnPayload {
    type Out;
    fn run<T: Payload>(self) -> Self::Out;
}

/// Runs `f` with the Rust type of WIT payload `ty` (`None`: no payload),
/// or gives `None` if the host cannot name it.
pub fn on_payload<F: OnPayload>(resolve: &Resolve, ty: Option<Type>, f: F) -> Option<F::Out> {
    let Some(ty) = ty else {
        return Some(f.run::<()>());
    };
    if let Type::Id(id) = ty {
        return match resolve.types[id].kind {
            TypeDefKind::Type(t) => on_payload(resolve, Some(t), f),
            TypeDefKind::List(item) => on_scalar(resolve, item, ListOf(f)),
            TypeDefKind::Option(item) => on_scalar(resolve, item, OptionOf(f)),
            TypeDefKind::Stream(_) => Some(f.run::<StreamAny>()),
            TypeDefKind::Future(_) => Some(f.run::<FutureAny>()),
            _ => None,
        };
    }
    on_scalar(resolve, ty, f)
}

/// `F` run on a list of the payload.
struct ListOf<F>(F);

impl<F: OnPayload> OnPayload for ListOf<F> {
    type Out = F::Out;
    fn run<T: Payload>(self) -> F::Out {
        self.0.run::<Vec<T>>()
    }
}

/// `F` run on an option of the payload.
struct OptionOf<F>(F);

impl<F: OnPayload> OnPayload for OptionOf<F> {
    type Out = F::Out;
    fn run<T: Payload>(self) -> F::Out {
        self.0.run::<Option<T>>()
    }
}

/// [`on_payload`] for a scalar or `string` (or an alias of one).
fn on_scalar<F: OnPayload>(resolve: &Resolve, ty: Type, f: F) -> Option<F::Out> {
    Some(match ty {
        Type::Bool => f.run::<bool>(),
        Type::U8 => f.run::<u8>(),
        Type::S8 => f.run::<i8>(),
        Type::U16 => f.run::<u16>(),
        Type::S16 => f.run::<i16>(),
        Type::U32 => f.run::<u32>(),
        Type::S32 => f.run::<i32>(),
        Type::U64 => f.run::<u64>(),
        Type::S64 => f.run::<i64>(),
        Type::F32 => f.run::<f32>(),
        Type::F64 => f.run::<f64>(),
        Type::Char => f.run::<char>(),
        Type::String => f.run::<String>(),
        Type::Id(id) => match resolve.types[id].kind {
            TypeDefKind::Type(t) => return on_scalar(resolve, t, f),
            _ => return None,
        },
        Type::ErrorContext => return None,
    })
}

/// Whether the host can make and read a future or stream of `ty`.
pub fn is_host_payload(resolve: &Resolve, ty: Option<Type>) -> bool {
    struct Yes;
    impl OnPayload for Yes {
        type Out = ();
        fn run<T: Payload>(self) {}
    }
    on_payload(resolve, ty, Yes).is_some()
}

fn typed<T: Payload>(items: &[Val]) -> Result<Vec<T>> {
    items
        .iter()
        .map(|v| T::from_val(v).ok_or_else(|| anyhow!("{v:?} is not of the payload type")))
        .collect()
}

/// Items a host-written future or stream never gave (its reader left).
pub type Unsent = Arc<Mutex<Vec<Val>>>;

/// The writer of a host-written future or stream: its items not taken
/// yet, which go to `unsent` if it is dropped with some left.
pub struct Give<T: Payload> {
    items: VecDeque<T>,
    unsent: Unsent,
}

impl<T: Payload> Drop for Give<T> {
    fn drop(&mut self) {
        let left = self.items.drain(..).map(T::to_val);
        self.unsent.lock().unwrap().extend(left);
    }
}

impl<D, T: Payload> StreamProducer<D> for Give<T> {
    type Item = T;
    type Buffer = VecBuffer<T>;

    fn poll_produce<'a>(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        store: StoreContextMut<'a, D>,
        mut destination: Destination<'a, T, VecBuffer<T>>,
        _: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        // No more than the read takes (one for a host reader), so that the
        // rest stays here.
        let me = self.get_mut();
        let n = destination
            .remaining(store)
            .unwrap_or(1)
            .min(me.items.len());
        let chunk: Vec<T> = me.items.drain(..n).collect();
        destination.set_buffer(chunk.into());
        Poll::Ready(Ok(if me.items.is_empty() {
            StreamResult::Dropped
        } else {
            StreamResult::Completed
        }))
    }
}

impl<T: Payload> Future for Give<T> {
    type Output = wasmtime::Result<T>;

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Self::Output> {
        let item = self.get_mut().items.pop_front();
        Poll::Ready(item.ok_or_else(|| wasmtime::format_err!("the future's item was taken")))
    }
}

/// A host-written stream of `items` (of payload type `T`), as a value.
pub struct NewStream<'a, S>(pub S, pub &'a [Val], pub Unsent);

impl<S: AsContextMut> OnPayload for NewStream<'_, S> {
    type Out = Result<Val>;
    fn run<T: Payload>(self) -> Result<Val> {
        let NewStream(mut store, items, unsent) = self;
        let give = Give {
            items: typed::<T>(items)?.into(),
            unsent,
        };
        let reader = StreamReader::new(&mut store, give)?;
        Ok(Val::Stream(StreamAny::try_from_stream_reader(
            &mut store, reader,
        )?))
    }
}

/// A host-written future of `item`, as a value.
pub struct NewFuture<'a, S>(pub S, pub &'a Val, pub Unsent);

impl<S: AsContextMut> OnPayload for NewFuture<'_, S> {
    type Out = Result<Val>;
    fn run<T: Payload>(self) -> Result<Val> {
        let NewFuture(mut store, item, unsent) = self;
        let give = Give {
            items: typed::<T>(std::slice::from_ref(item))?.into(),
            unsent,
        };
        let reader = FutureReader::new(&mut store, give)?;
        Ok(Val::Future(FutureAny::try_from_future_reader(
            &mut store, reader,
        )?))
    }
}

/// A stream or future that came out of the guest, to read to its end.
pub enum Readable {
    Stream(StreamAny),
    Future(FutureAny),
}

type Reading<'a> = Pin<Box<dyn Future<Output = Result<Vec<Val>>> + Send + 'a>>;

/// Reads `from` to its end, taking at most `chunk` items at a time.
pub struct Read<'a, D: 'static> {
    pub accessor: &'a Accessor<D>,
    pub from: Readable,
    pub chunk: usize,
}

impl<'a, D: Send + 'static> OnPayload for Read<'a, D> {
    type Out = Reading<'a>;
    fn run<T: Payload>(self) -> Reading<'a> {
        Box::pin(async move {
            let done = Arc::new(Mutex::new(None));
            let Read {
                accessor,
                from,
                chunk,
            } = self;
            accessor
                .with(|mut store| -> wasmtime::Result<()> {
                    match from {
                        Readable::Stream(s) => s.try_into_stream_reader::<T>()?.pipe(
                            &mut store,
                            Collect {
                                items: Vec::new(),
                                chunk,
                                done: done.clone(),
                            },
                        ),
                        Readable::Future(f) => f
                            .try_into_future_reader::<T>()?
                            .pipe(&mut store, Take(done.clone())),
                    }
                })
                .map_err(|e| anyhow!("{e:?}"))?;
            // The consumer hands over its items when the writer is done.
            for _ in 0..100_000 {
                if let Some(items) = done.lock().unwrap().take() {
                    return Ok(items.into_iter().map(T::to_val).collect());
                }
                tokio::task::yield_now().await;
            }
            Err(anyhow!("the writer never finished"))
        })
    }
}

/// Collects a stream's items, `chunk` at most per read; they are in `done`
/// once the consumer is dropped (the writer is done).
struct Collect<T> {
    items: Vec<T>,
    chunk: usize,
    done: Arc<Mutex<Option<Vec<T>>>>,
}

impl<D: 'static, T: Payload> StreamConsumer<D> for Collect<T> {
    type Item = T;

    fn poll_consume(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        mut store: StoreContextMut<D>,
        mut source: Source<'_, T>,
        _: bool,
    ) -> Poll<wasmtime::Result<StreamResult>> {
        let n = source.remaining(&mut store).min(self.chunk);
        let mut buffer = Vec::with_capacity(n);
        source.read(store, &mut buffer)?;
        self.items.extend(buffer);
        Poll::Ready(Ok(StreamResult::Completed))
    }
}

impl<T> Drop for Collect<T> {
    fn drop(&mut self) {
        *self.done.lock().unwrap() = Some(std::mem::take(&mut self.items));
    }
}

/// Takes a future's item.
struct Take<T>(Arc<Mutex<Option<Vec<T>>>>);

impl<D: 'static, T: Payload> FutureConsumer<D> for Take<T> {
    type Item = T;

    fn poll_consume(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
        store: StoreContextMut<D>,
        mut source: Source<'_, T>,
        _: bool,
    ) -> Poll<wasmtime::Result<()>> {
        let mut item = Vec::with_capacity(1);
        source.read(store, &mut item)?;
        *self.0.lock().unwrap() = Some(item);
        Poll::Ready(Ok(()))
    }
}
