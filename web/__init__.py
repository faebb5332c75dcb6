"""The aiohttp view: command submission, status and reads."""
