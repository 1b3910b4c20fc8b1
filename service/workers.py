"""What a scoring worker on another host is asked before a run hands it partitions."""

import httpx


async def prefect_api_problem(api_url: str, timeout_s: float = 5) -> str | None:
    """Why this process cannot reach the Prefect API at `api_url`; None when it answers.

    Any HTTP answer counts: the flow's own process already talks to the same URL, so what a
    worker on another host may lack is the route to it (a loopback address, a firewall)."""
    try:
        async with httpx.AsyncClient(timeout=timeout_s) as client:
            await client.get(f"{api_url.rstrip('/')}/health")
    except httpx.HTTPError as error:
        return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return None
