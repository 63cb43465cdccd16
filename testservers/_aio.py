"""asyncio without blocking the event loop: the awaitable twins of the
waits, and calls that must block, run on a short-lived thread.

A wait method returns what ``wait_for()`` returns.  Its twin, made by
:func:`_awaitable`, calls it with ``_AWAITING`` set, so that ``wait_for()``
returns an :class:`_AsyncWait` instead of blocking; the twin returns its
coroutine.  Nothing here imports asyncio until a coroutine runs: most
users never pay for it.
"""

import contextvars
import threading

__all__ = []

# Set while an ``async_wait_...`` twin calls its blocking original: then
# wait_for() returns an awaitable instead of blocking (see _awaitable).
_AWAITING = contextvars.ContextVar("testservers_awaiting", default=False)


def _awaitable(wait):
    """Return the coroutine twin of the wait method *wait*.

    *wait* must return what ``wait_for()`` returns; called with
    ``_AWAITING`` set, that is an :class:`_AsyncWait`, whose coroutine the
    twin returns.  The arguments are checked at the call, as by the
    original, and forgetting the ``await`` gets Python's RuntimeWarning.
    """
    def twin(*args, **kwargs):
        token = _AWAITING.set(True)
        try:
            pending = wait(*args, **kwargs)
        finally:
            _AWAITING.reset(token)
        # A coroutine: forgetting the await gets Python's RuntimeWarning.
        return pending._run()
    twin.__wrapped__ = wait     # inspect.signature() and pydoc show wait's
    twin.__name__ = "async_" + wait.__name__
    twin.__qualname__ = wait.__qualname__.rpartition(".")[0] + "." + twin.__name__
    twin.__doc__ = ("Await what :meth:`%s` returns, without blocking the event loop.\n\n"
                    "The arguments, the timeout message and the handler errors raised\n"
                    "at once are those of :meth:`%s`; the condition is looked at again\n"
                    "each time a record or an error arrives (not on a timer)."
                    % (wait.__name__, wait.__name__))
    return twin


class _AsyncWait:
    """``wait_for()`` as an awaitable, for a coroutine on an event loop.

    The predicate runs on the loop's thread.  The recording threads wake
    it through ``loop.call_soon_threadsafe`` each time a record or an
    error arrives; nothing polls, and no thread waits on its behalf.
    """

    def __init__(self, store, predicate, timeout, what):
        self._store = store
        self._predicate = predicate
        self._timeout = timeout
        self._what = what
        self._future = None

    def _wake(self):
        # On a recording thread, with the records locked: only schedule.
        future = self._future
        if future is not None:
            try:
                future.get_loop().call_soon_threadsafe(_settle, future)
            except RuntimeError:
                pass            # the loop is closed: nobody is waiting

    async def _run(self):
        import asyncio     # here: most users never pay for importing it
        store, cond = self._store, self._store.cond
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._timeout
        with cond:
            cond.wakers.append(self._wake)
        try:
            while True:
                with cond:
                    seen = cond.changes
                store.raise_errors()
                result = self._predicate()
                if result:
                    return result
                remaining = deadline - loop.time()
                if remaining <= 0:
                    raise store.timeout_error(self._timeout, self._what)
                with cond:
                    if cond.changes != seen:
                        continue
                    self._future = loop.create_future()
                try:
                    await asyncio.wait_for(self._future, remaining)
                except asyncio.TimeoutError:
                    pass        # the loop's top raises the TimeoutError
        finally:
            with cond:
                cond.wakers.remove(self._wake)
                self._future = None


def _settle(future):
    if not future.done():
        future.set_result(None)


async def _in_thread(func, *args):
    """Run ``func(*args)`` on a short-lived thread; await and return its result.

    For the calls that must block (joining threads, starting a child
    process): the event loop goes on meanwhile.  The thread is joined
    before this returns, so none is left behind.
    """
    import asyncio
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def run():
        try:
            outcome = (True, func(*args))
        except BaseException as exc:
            outcome = (False, exc)
        try:
            loop.call_soon_threadsafe(_deliver, done, outcome)
        except RuntimeError:
            pass            # the loop closed meanwhile
    thread = threading.Thread(target=run, daemon=True,
                              name="%s (from a coroutine)" % (getattr(func, "__qualname__", func),))
    thread.start()
    try:
        ok, value = await asyncio.shield(done)
    finally:
        thread.join()       # it is finishing, or func's own deadline bounds it
    if not ok:
        raise value
    return value


def _deliver(future, outcome):
    if not future.done():
        future.set_result(outcome)
