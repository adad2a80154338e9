"""One ``APIRouter`` per resource: runs, reports, champion, predict, health."""
