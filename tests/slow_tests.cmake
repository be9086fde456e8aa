# Read by CTest (see CMakeLists.txt): the discovered tests that take ten
# seconds or more start first, the longest first, so that none of them is
# left running alone at the end of a fresh clone's suite. A test missing
# here only starts later; CTest ignores a name here that no longer exists.
set_tests_properties(
  Sharing.ThirtyTwoSeedersAtOnceWithAtMostEightDownloadThreads
  TrackerRestart.ClientsStayLoggedInAndSharing
  PROPERTIES COST 120)
set_tests_properties(
  Sharing.PartialDownloaderServesAThirdClient
  FileHasher.SeveralGibibytesInFlatMemory
  Sharing.SeederKilledMidDownloadAndTheDownloadStillCompletes
  HostileSignups.SessionCallsAndKnownLoginsAnswerThroughACreateUserStorm
  Sharing.LogoutStopsSharingAndLoginSharesAgain
  Sharing.ThreeSeedersOneDownloaderByteIdenticalFromSeveralPeers
  PiecePicker.APickLooksAtAFewPiecesNotTheWholeFile
  DownloadTest.PiecesTheWorkersHoldNeverExhaustALink
  PROPERTIES COST 100)
