"""`takeoff serve --replicas N`: the server on Ray Serve. `options` and `proxy` import no Ray;
`driver` imports it only when serving on Ray, `replica` always does."""
