-- The feed's page size under a statement_timeout (syncctl.controller.Feed): the session's own
-- setting, as the DBA set it for the daemon's login; syncctl never sets or overrides it.

-- name: statement_timeout_ms
-- the session's statement_timeout in milliseconds (0: none)
SELECT setting::int8 FROM pg_catalog.pg_settings WHERE name = 'statement_timeout';
