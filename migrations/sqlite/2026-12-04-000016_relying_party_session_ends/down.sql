-- Nothing to undo: the earlier ends were a defect, not data to restore.
SELECT 1;
