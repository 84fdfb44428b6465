import signal, sys
import tensorzero
gateway = tensorzero._start_http_gateway(config_file=sys.argv[1], clickhouse_url=None, postgres_url=None, valkey_url=None, async_setup=False)
print("tensorzero gateway listening on " + gateway.base_url, flush=True)
while True:
    signal.pause()
