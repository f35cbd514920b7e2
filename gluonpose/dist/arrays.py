"""Arrays handed to a collective (ps-lite or Horovod): never oneDNN-layout memory."""
import mxnet as mx

__all__ = ["plain_copy"]


def plain_copy(arr):
    """A default-layout copy of ``arr`` (never oneDNN-layout memory, which ps-lite cannot send
    or receive into), on the same context."""
    return mx.nd.array(arr.asnumpy(), ctx=arr.context, dtype=arr.dtype)
