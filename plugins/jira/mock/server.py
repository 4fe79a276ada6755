"""JiraMock: the Jira Cloud site the plugin talks to, assembled from its route groups."""

from __future__ import annotations

from .comments import CommentRoutes
from .issues import IssueRoutes
from .search import SearchRoutes
from .workflow import WorkflowRoutes


class JiraMock(IssueRoutes, SearchRoutes, CommentRoutes, WorkflowRoutes):
    """A Jira Cloud site with one project (SEC) and a simple three-status workflow.

    Test helpers: `add_issue`, `set_permissions`, `throttle`, `lose_response`, `index_lag`,
    `issues`, `comments`.
    """
