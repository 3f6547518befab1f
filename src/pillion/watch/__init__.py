"""Files that change: noticing it at once (inotify on their directories, with
polling as the fallback) and telling a real change from a touch (a hash of the
content). Shared by the log tailer and the config watches."""

from pillion.watch.content import ContentHasher, Snapshot
from pillion.watch.directories import DirectoryWatch, WatchUnavailable, directories_of

__all__ = ["ContentHasher", "DirectoryWatch", "Snapshot", "WatchUnavailable", "directories_of"]
