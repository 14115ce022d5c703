"""The engine: EngineCore (the synchronous step), the engine thread that runs it, the asyncio
Engine that admits and delivers, and the readers (loaded models) it serves. Nothing here knows
Starlette or HTTP field names: the HTTP layer and any other front end call `Engine.submit`."""
