-- The scheduler parses the DAG folder; the pages, the API and the CLI read what it found
-- from here instead of parsing the files themselves.

-- A DAG whose file was removed or no longer loads stays for its runs' sake, but is no
-- longer scheduled or listed.
ALTER TABLE setlist.dags ADD COLUMN is_active boolean NOT NULL DEFAULT true;

-- Every problem of the files that did not load at the last parse, as file:line:column.
CREATE TABLE setlist.dag_import_errors (
    file_path text        NOT NULL,
    line      integer     NOT NULL,
    col       integer     NOT NULL,
    message   text        NOT NULL,
    parsed_at timestamptz NOT NULL DEFAULT clock_timestamp()
);
CREATE INDEX dag_import_errors_by_place ON setlist.dag_import_errors (file_path, line, col);
