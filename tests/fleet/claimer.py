"""One claimer process for the claim tests: ``python claimer.py ID N [PREFIX]``.

Connects to ``$FLEET_DSN`` as fleet instance ID, prints ``ready``, waits for a line on
stdin (the start signal, sent to every claimer at once), then claims the keys
PREFIX0…PREFIX{N-1}, in an order of its own, as fast as it can and prints the keys it won as JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys

from fastmango.agent.fleet.service import FleetService
from fastmango.agent.settings import Settings
from fastmango.agent.settings_fleet import FleetSettings


async def main(instance: str, n: int, prefix: str) -> None:
    settings = Settings(database_url=os.environ["FLEET_DSN"],
                        fleet=FleetSettings(instance_id=instance))  # fmt: skip
    fleet = FleetService(settings)
    await fleet.claims(1)  # connected and migrated before the start line
    print("ready", flush=True)
    await asyncio.to_thread(sys.stdin.readline)
    keys = [f"{prefix}{i}" for i in range(n)]
    random.Random(instance).shuffle(keys)  # each claimer in its own order: they meet mid-way
    won = [key for key in keys if await fleet.claim(key)]
    print(json.dumps(won), flush=True)
    await fleet.stop()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "k"))
