"""Redis for the gateway's hot path: an asyncio client that cannot stall the event loop.

The synchronous client blocked the whole gateway while Redis hung (SIGSTOP on redis: four
concurrent calls answered at 3, 6, 9 and 12 s, and `/metrics` took 11.8 s). Here every
Redis operation is awaited on the event loop with a hard timeout (`redis_timeout`), and a
circuit breaker stands in front of it:

- **closed**: operations go to Redis. The first one that fails (timeout, refused, reset)
  opens the breaker.
- **open**: operations fail at once with `StoreUnavailable`, without touching Redis; a
  background probe PINGs Redis every `probe_interval` seconds and closes the breaker when
  it answers.

What fails closed and what keeps working while the breaker is open is decided by the
callers: calls under a limit are refused (the counter cannot be reserved), grants are
served from the records last read from Redis (`grant_cache_seconds`), and everything that
does not need Redis (unlimited calls of known grants, `/metrics`) is untouched.

Limit counters: `RedisDeferredCounters` meets the engine's synchronous `CounterStore`
interface in two passes (deferred.py), so the Redis round trip is awaited outside the
engine; the reservation is the same all-or-nothing Lua script as `RedisCounters`'.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict

from mcpp import Charge

from .counters import _RELEASE, _RESERVE, RedisCounters, release_args, reserve_args
from .deferred import LIMIT_STORE_DOWN, DeferredCounters, StoreUnavailable
from .grants import GrantRecord, _hash

__all__ = ["LIMIT_STORE_DOWN", "StoreUnavailable", "AsyncRedis", "AsyncRedisGrants", "RedisDeferredCounters"]


class AsyncRedis:
    """One redis.asyncio client behind a circuit breaker (see the module docstring)."""

    def __init__(self, url: str, timeout: float, log, metrics, probe_interval: float = 0.5):
        import redis.asyncio as aredis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.url = url
        self.timeout = timeout
        self.log, self.metrics = log, metrics
        self.probe_interval = probe_interval
        # no retries inside the client: a retried command could double a counter, and the
        # breaker, not the client, decides when Redis is worth asking again
        self.client = aredis.Redis.from_url(url, socket_timeout=timeout, socket_connect_timeout=timeout,
                                            retry=Retry(NoBackoff(), 0), health_check_interval=0)
        self.open_since: float | None = None
        self.last_error: str | None = None
        self._probe: asyncio.Task | None = None
        self.metrics.set("mcpp_redis_breaker_open", (), 0)

    @property
    def is_open(self) -> bool:
        return self.open_since is not None

    async def run(self, op):
        """`await op()` against Redis within `timeout`; StoreUnavailable if the breaker is
        open (at once) or the operation fails (which opens it)."""
        if self.open_since is not None:
            self.metrics.inc("mcpp_redis_refused_total", ())
            raise StoreUnavailable(f"Redis is unavailable (circuit open since {_ago(self.open_since)}: {self.last_error})")
        try:
            async with asyncio.timeout(self.timeout):
                return await op()
        except asyncio.CancelledError:
            raise
        except Exception as e:  # TimeoutError, redis errors, OSError: all the same to the caller
            why = "no answer within {:g}s".format(self.timeout) if isinstance(e, TimeoutError) else f"{type(e).__name__}: {e}"
            self._trip(why)
            raise StoreUnavailable(f"Redis is unavailable ({why})") from None

    def _trip(self, why: str) -> None:
        self.last_error = why
        if self.open_since is not None:
            return
        self.open_since = time.time()
        self.metrics.set("mcpp_redis_breaker_open", (), 1)
        self.metrics.inc("mcpp_redis_breaker_trips_total", ())
        self.log.error("redis_unavailable", error=why, breaker="open")
        if self._probe is None or self._probe.done():
            self._probe = asyncio.ensure_future(self._probe_until_closed())

    async def _probe_until_closed(self) -> None:
        while self.open_since is not None:
            await asyncio.sleep(self.probe_interval)
            try:
                async with asyncio.timeout(self.timeout):
                    await self.client.ping()
            except asyncio.CancelledError:
                raise
            except Exception as e:
                self.last_error = f"{type(e).__name__}: {e}" if not isinstance(e, TimeoutError) else f"no answer within {self.timeout:g}s"
                continue
            down = time.time() - self.open_since
            self.open_since = None
            self.metrics.set("mcpp_redis_breaker_open", (), 0)
            self.log.info("redis_available", breaker="closed", down_s=round(down, 1))

    async def ping(self) -> None:
        await self.run(self.client.ping)

    async def aclose(self) -> None:
        if self._probe is not None:
            self._probe.cancel()
        try:
            await self.client.aclose()
        except (OSError, ConnectionError, TimeoutError):
            pass  # the connection is already gone: nothing left to close
        except Exception as e:  # (redis's own errors) closing must not fail shutdown, but is not silent
            self.log.warning("redis_close_failed", error=f"{type(e).__name__}: {e}")


def _ago(t: float) -> str:
    return f"{time.time() - t:.1f}s ago"


class AsyncRedisGrants:
    """Grant records read from Redis on every request (a revocation is seen at once), and
    the records last read kept, so that while Redis is unavailable a grant seen within the
    last `cache_seconds` still authenticates. (A revocation cannot reach Redis while Redis
    is down; the window only matters when one replica is cut off from a Redis the others
    reach.) `cache_seconds = 0` makes every request need Redis."""

    PREFIX = "mcpp:grant:"
    MAX_CACHED = 10_000

    def __init__(self, store: AsyncRedis, cache_seconds: float):
        self.store = store
        self.cache_seconds = cache_seconds
        self._cache: OrderedDict[str, tuple[GrantRecord | None, float]] = OrderedDict()

    async def aget(self, gid: str) -> GrantRecord | None:
        try:
            h = await self.store.run(lambda: self.store.client.hgetall(self.PREFIX + gid))
        except StoreUnavailable:
            hit = self._cache.get(gid)
            if hit is not None and time.monotonic() - hit[1] <= self.cache_seconds:
                return hit[0]
            raise
        rec = _hash(gid, h) if h else None
        self._cache[gid] = (rec, time.monotonic())
        self._cache.move_to_end(gid)
        while len(self._cache) > self.MAX_CACHED:
            self._cache.popitem(last=False)
        return rec


class RedisDeferredCounters(DeferredCounters):
    """Limit counters in Redis, reserved by an awaited round trip (see deferred.py): the
    same Lua scripts as `RedisCounters`, through the breaker."""

    name = "Redis counter store"

    def __init__(self, store: AsyncRedis):
        super().__init__()
        self.store = store
        c = store.client
        self._reserve = c.register_script(_RESERVE)
        self._release = c.register_script(_RELEASE)

    async def values_async(self, keys: list[str]) -> dict:
        """Current counts of these keys (one MGET)."""
        keys = list(dict.fromkeys(keys))
        vals = await self.store.run(lambda: self.store.client.mget([RedisCounters.PREFIX + k for k in keys]))
        return {k: float(v) if v is not None else 0.0 for k, v in zip(keys, vals)}

    async def reserve_async(self, charges: list[Charge]) -> int | None:
        keys, argv = reserve_args(charges)
        bad = int(await self.store.run(lambda: self._reserve(keys=keys, args=argv)))
        return None if bad < 0 else bad

    async def release_async(self, charges: list[Charge]) -> None:
        try:
            await self.store.run(lambda: self._release(keys=[RedisCounters.PREFIX + c.key for c in charges],
                                                       args=release_args(charges)))
        except StoreUnavailable as e:
            self.store.log.warning("limit_refund_lost", error=str(e), counters=len(charges))

