//! A prost codec with smaller per-RPC buffers. tonic allocates its buffer
//! size eagerly for every stream in each direction (8 KiB by default); the
//! control plane holds one long-lived stream per agent, and our messages are
//! small, so 2 KiB buffers (grown in 2 KiB steps for the occasional large
//! message) save ~12 KiB per connected agent.

use tonic::codec::{BufferSettings, Codec};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

const BUFFER: usize = 2 * 1024;
const YIELD_THRESHOLD: usize = 32 * 1024;

#[derive(Debug, Clone, Default)]
pub struct SmallBufferCodec<T, U>(ProstCodec<T, U>);

impl<T, U> Codec for SmallBufferCodec<T, U>
where
    T: prost::Message + Send + 'static,
    U: prost::Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = ProstDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::new(BufferSettings::new(BUFFER, YIELD_THRESHOLD))
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProstCodec::<T, U>::raw_decoder(BufferSettings::new(BUFFER, YIELD_THRESHOLD))
    }
}
