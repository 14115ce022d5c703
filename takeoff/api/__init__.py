"""The HTTP layer: the Takeoff, management and OpenAI routes, their pydantic schemas, the HTTP and
SSE helpers, the middleware and the OpenAPI document. Routes parse, hand over to the engine, and
answer; nothing here runs a model."""
