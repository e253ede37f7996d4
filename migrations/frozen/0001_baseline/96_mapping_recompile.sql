-- An upgrade of the engine regenerates schema syncmap from the active mapping with today's
-- compiler (the compiled moves too), and keeps its version (no new version, no audit row). A database without a mapping
-- gets none here: a DBA installs the shop's (`syncctl mapping install`, docs/own-database.md); the
-- reference shop's is installed with it (`syncctl db reference-shop`). After the roles
-- (sql/95_roles.sql): compiling runs as the owner role. Re-runnable.
DO $$
DECLARE
    active jsonb;
BEGIN
    SELECT v.document INTO active FROM sync.mapping_version AS v WHERE v.active;
    IF active IS NOT NULL THEN
        EXECUTE sync.compile_mapping(active);
        PERFORM sync._moves_current(true);
    END IF;
END
$$;
