"""The connectapi profile answers garth reads at login and a sync reads once: socialProfile,
user-settings, and a stable daily-steps series (enough of each for garth's models)."""

from __future__ import annotations

import datetime as dt
import re
import zlib
from typing import Any, Final

from .accounts import Account, garmin_guid
from .handling import bad_request


def _social_profile(account: Account) -> dict[str, Any]:
    """Enough of Garmin's socialProfile for garth's UserProfile model."""
    visibility = "private"
    return {
        "id": account.profile_id,
        "profileId": account.profile_id,
        "garminGUID": garmin_guid(account),
        "displayName": account.display_name,
        "fullName": account.full_name,
        "userName": account.username,
        "profileImageType": None,
        "profileImageUrlLarge": None,
        "profileImageUrlMedium": None,
        "profileImageUrlSmall": None,
        "location": None,
        "facebookUrl": None,
        "twitterUrl": None,
        "personalWebsite": None,
        "motivation": None,
        "bio": None,
        "primaryActivity": None,
        "favoriteActivityTypes": [],
        "runningTrainingSpeed": 0.0,
        "cyclingTrainingSpeed": 0.0,
        "favoriteCyclingActivityTypes": [],
        "cyclingClassification": None,
        "cyclingMaxAvgPower": 0.0,
        "swimmingTrainingSpeed": 0.0,
        "profileVisibility": visibility,
        "activityStartVisibility": visibility,
        "activityMapVisibility": visibility,
        "courseVisibility": visibility,
        "activityHeartRateVisibility": visibility,
        "activityPowerVisibility": visibility,
        "badgeVisibility": visibility,
        "showAge": False,
        "showWeight": False,
        "showHeight": False,
        "showWeightClass": False,
        "showAgeRange": False,
        "showGender": False,
        "showActivityClass": False,
        "showVO2Max": False,
        "showPersonalRecords": False,
        "showLast12Months": False,
        "showLifetimeTotals": False,
        "showUpcomingEvents": False,
        "showRecentFavorites": False,
        "showRecentDevice": False,
        "showRecentGear": False,
        "showBadges": False,
        "otherActivity": None,
        "otherPrimaryActivity": None,
        "otherMotivation": None,
        "userRoles": ["SCOPE_CONNECT_READ", "SCOPE_CONNECT_WRITE"],
        "nameApproved": True,
        "userProfileFullName": account.full_name,
        "makeGolfScorecardsPrivate": True,
        "allowGolfLiveScoring": False,
        "allowGolfScoringByConnections": True,
        "userLevel": 1,
        "userPoint": 0,
        "levelUpdateDate": "2024-01-01T00:00:00.0",
        "levelIsViewed": True,
        "levelPointThreshold": 20,
        "userPointOffset": 0,
        "userPro": False,
    }


def _number_format(format_id: int, key: str, fraction: int) -> dict[str, Any]:
    return {
        "formatId": format_id,
        "formatKey": key,
        "minFraction": fraction,
        "maxFraction": fraction,
        "groupingUsed": True,
        "displayFormat": None,
    }


def _user_data() -> dict[str, Any]:
    return {
        "gender": "FEMALE",
        "weight": 60000.0,
        "height": 168.0,
        "timeFormat": "time_twenty_four_hr",
        "birthDate": "1990-01-01",
        "measurementSystem": "metric",
        "activityLevel": None,
        "handedness": "RIGHT",
        "powerFormat": _number_format(30, "watt", 0),
        "heartRateFormat": _number_format(21, "bpm", 0),
        "firstDayOfWeek": {
            "dayId": 2,
            "dayName": "monday",
            "sortOrder": 2,
            "isPossibleFirstDay": True,
        },
        "vo2MaxRunning": None,
        "vo2MaxCycling": None,
        "lactateThresholdSpeed": None,
        "lactateThresholdHeartRate": None,
        "diveNumber": None,
        "intensityMinutesCalcMethod": "AUTO",
        "moderateIntensityMinutesHrZone": 3,
        "vigorousIntensityMinutesHrZone": 4,
        "hydrationMeasurementUnit": "milliliter",
        "hydrationContainers": [],
        "hydrationAutoGoalEnabled": True,
        "firstbeatMaxStressScore": None,
        "firstbeatCyclingLtTimestamp": None,
        "firstbeatRunningLtTimestamp": None,
        "thresholdHeartRateAutoDetected": True,
        "ftpAutoDetected": None,
        "trainingStatusPausedDate": None,
        "weatherLocation": None,
        "golfDistanceUnit": "statute_us",
        "golfElevationUnit": None,
        "golfSpeedUnit": None,
        "externalBottomTime": None,
    }


def _user_settings(account: Account) -> dict[str, Any]:
    """Enough of Garmin's user-settings for garth's UserSettings model."""
    return {
        "id": account.profile_id,
        "userData": _user_data(),
        "userSleep": {
            "sleepTime": 79200,
            "defaultSleepTime": False,
            "wakeTime": 25200,
            "defaultWakeTime": False,
        },
        "connectDate": None,
        "sourceType": None,
        "userSleepWindows": [
            {
                "sleepWindowFrequency": "DAILY",
                "startSleepTimeSecondsFromMidnight": 79200,
                "endSleepTimeSecondsFromMidnight": 25200,
            }
        ],
    }


_DAILY_STEPS: Final = re.compile(
    r"/usersummary-service/stats/steps/daily/(\d{4}-\d{2}-\d{2})/(\d{4}-\d{2}-\d{2})"
)


def _daily_steps(account: Account, start_text: str, end_text: str) -> list[dict[str, Any]]:
    """Deterministic daily steps (same account and day, same numbers) for sync tests."""
    try:
        start, end = dt.date.fromisoformat(start_text), dt.date.fromisoformat(end_text)
    except ValueError:
        raise bad_request("dates must be YYYY-MM-DD") from None
    if not 0 <= (end - start).days < 366:
        raise bad_request("the range must be 1 to 366 days, start before end")
    days = [start + dt.timedelta(days=offset) for offset in range((end - start).days + 1)]
    rows = []
    for day in days:
        steps = 2000 + zlib.crc32(f"{account.profile_id}:{day}".encode()) % 14000
        rows.append(
            {
                "calendarDate": day.isoformat(),
                "values": {"totalSteps": steps, "totalDistance": steps * 3 // 4, "stepGoal": 8000},
            }
        )
    return rows


def profile_answer(account: Account, path: str) -> Any:
    """The JSON for a known profile/stats GET path, or None when the path is not one."""
    if path == "/userprofile-service/socialProfile":
        return _social_profile(account)
    if path == "/userprofile-service/userprofile/user-settings":
        return _user_settings(account)
    if match := _DAILY_STEPS.fullmatch(path):
        return _daily_steps(account, match.group(1), match.group(2))
    return None

