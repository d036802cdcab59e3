-- How many bytes of a session's recording file are committed. SQLite
-- deployments keep recording parts in files beside the database (each byte
-- written once, not to the WAL and again at a checkpoint); PostgreSQL keeps
-- them in terminal_recordings, and this stays 0.
ALTER TABLE terminal_sessions ADD COLUMN recording_file_bytes BIGINT NOT NULL DEFAULT 0;
