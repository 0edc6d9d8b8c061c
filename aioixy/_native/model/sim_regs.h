/* The 82599 as the model knows it: register offsets, bit fields and descriptor layouts.
 *
 * This table is the model's own, written from the Intel 82599 10 GbE Controller Datasheet
 * (chapter 8.2.3 register descriptions, 7.1/7.2 descriptor formats) and checked against the
 * definitions in Linux's and DPDK's ixgbe_type.h (read for the facts, nothing copied). It
 * deliberately does NOT come from the driver's drivers/ixgbe_regs.h: were the model to share
 * the driver's header, a wrong offset or bit there would be wrong on both sides and no test
 * could see it. The names are the same as the driver's where both know a fact, so
 * tests/test_ixgbe_regs.py can compare the two tables name by name (it compiles both and
 * checks that every value both define agrees).
 *
 * Some registers have two addresses on the 82599: for queues 0..15 the 82598's layout still
 * answers (SRRCTL at 0x02100 + 4n, DCA_RXCTRL at 0x02200 + 4n, RAL/RAH at 0x05400 + 8n), and
 * Linux and ixy use those. *_82598 below are those aliases; the model folds them onto the
 * 82599 address (sim_regs.c, canonical_reg).
 */
#ifndef AIOIXY_SIM_REGS_H
#define AIOIXY_SIM_REGS_H

#include <stdint.h>

#define IXGBE_BAR0_SIZE 0x20000u /* memory BAR 0: 128 KiB of registers */

/* ---- device control, status, EEPROM (8.2.3.1, 8.2.3.2) */
#define IXGBE_CTRL 0x00000
#define IXGBE_CTRL_GIO_DIS (1u << 2)
#define IXGBE_CTRL_LRST (1u << 3)
#define IXGBE_CTRL_RST (1u << 26)
#define IXGBE_CTRL_RST_MASK (IXGBE_CTRL_RST | IXGBE_CTRL_LRST)
#define IXGBE_STATUS 0x00008
#define IXGBE_STATUS_GIO (1u << 19)
#define IXGBE_CTRL_EXT 0x00018
#define IXGBE_CTRL_EXT_NS_DIS (1u << 16)
#define IXGBE_EEC 0x10010
#define IXGBE_EEC_ARD (1u << 9)

/* ---- interrupts (8.2.3.5; 7.3 MSI-X): queue causes mapped to vectors by IVAR */
#define IXGBE_EICR 0x00800
#define IXGBE_EICS 0x00808
#define IXGBE_EIAC 0x00810
#define IXGBE_EITR(v) (0x00820u + 4u * (v))
#define IXGBE_EITR_ITR_MASK 0x00000ff8u
#define IXGBE_EITR_CNT_WDIS (1u << 31)
#define IXGBE_EIMS 0x00880
#define IXGBE_EIMC 0x00888
#define IXGBE_EIAM 0x00890
#define IXGBE_GPIE 0x00898
#define IXGBE_GPIE_MSIX_MODE (1u << 4)
#define IXGBE_GPIE_EIAME (1u << 30)
#define IXGBE_GPIE_PBA_SUPPORT (1u << 31)
#define IXGBE_IVAR(i) (0x00900u + 4u * (i))
#define IXGBE_IVAR_ALLOC_VAL 0x80u

/* ---- receive queues (8.2.3.8): 64 bytes per queue from 0x01000 */
#define IXGBE_RXQ_BASE 0x01000u
#define IXGBE_RXQ_STRIDE 0x40u
#define IXGBE_RDBAL(q) (0x01000u + 0x40u * (q))
#define IXGBE_RDBAH(q) (0x01004u + 0x40u * (q))
#define IXGBE_RDLEN(q) (0x01008u + 0x40u * (q))
#define IXGBE_DCA_RXCTRL(q) (0x0100Cu + 0x40u * (q))
#define IXGBE_RDH(q) (0x01010u + 0x40u * (q))
#define IXGBE_SRRCTL(q) (0x01014u + 0x40u * (q))
#define IXGBE_RDT(q) (0x01018u + 0x40u * (q))
#define IXGBE_RXDCTL(q) (0x01028u + 0x40u * (q))
#define IXGBE_QPRC(q) (0x01030u + 0x40u * (q))
#define IXGBE_QBRC_L(q) (0x01034u + 0x40u * (q))
#define IXGBE_QBRC_H(q) (0x01038u + 0x40u * (q))
#define IXGBE_QPRDC(q) (0x01430u + 0x40u * (q))
#define IXGBE_SRRCTL_82598(q) (0x02100u + 4u * (q))     /* queues 0..15 */
#define IXGBE_DCA_RXCTRL_82598(q) (0x02200u + 4u * (q)) /* queues 0..15 */
#define IXGBE_RQSMR(i) (0x02300u + 4u * (i))

#define IXGBE_SRRCTL_BSIZEPKT_MASK 0x1fu      /* 4:0, KiB; 7:5 reserved */
#define IXGBE_SRRCTL_BSIZEPKT_MAX 16u         /* valid 1..16 KiB */
#define IXGBE_SRRCTL_DESCTYPE_MASK (7u << 25)
#define IXGBE_SRRCTL_DESCTYPE_ADV_ONEBUF (1u << 25)
#define IXGBE_SRRCTL_DROP_EN (1u << 28)
#define IXGBE_DCA_RXCTRL_DESC_RRO_EN (1u << 9)
#define IXGBE_DCA_RXCTRL_RSVD12 (1u << 12)    /* reserved; resets to 1, software writes 0 */
#define IXGBE_DCA_RXCTRL_DATA_WRO_EN (1u << 13)
#define IXGBE_DCA_RXCTRL_HEAD_WRO_EN (1u << 15)
#define IXGBE_RXDCTL_ENABLE (1u << 25)
#define IXGBE_RXDCTL_SWFLSH (1u << 26)

#define IXGBE_RDRXCTL 0x02F00
#define IXGBE_RDRXCTL_CRCSTRIP (1u << 1)
#define IXGBE_RDRXCTL_DMAIDONE (1u << 3)
#define IXGBE_RDRXCTL_RSCFRSTSIZE (0x1fu << 17)
#define IXGBE_RDRXCTL_RSCACKC (1u << 25)
#define IXGBE_RDRXCTL_FCOE_WRFIX (1u << 26)
#define IXGBE_RXCTRL 0x03000
#define IXGBE_RXCTRL_RXEN (1u << 0)
#define IXGBE_RXPBSIZE(i) (0x03C00u + 4u * (i))
#define IXGBE_RXPBSIZE_512KB (512u << 10)
#define IXGBE_MPC(i) (0x03FA0u + 4u * (i))
#define IXGBE_SECRXCTRL 0x08D00
#define IXGBE_SECRXCTRL_RX_DIS (1u << 1)
#define IXGBE_SECRXSTAT 0x08D04
#define IXGBE_SECRXSTAT_SECRX_RDY (1u << 0)

/* ---- receive filters and RSS (8.2.3.7) */
#define IXGBE_RXCSUM 0x05000
#define IXGBE_RXCSUM_PCSD (1u << 13)
#define IXGBE_FCTRL 0x05080
#define IXGBE_FCTRL_SBP (1u << 1)             /* store bad packets (with RXE) */
#define IXGBE_FCTRL_MPE (1u << 8)
#define IXGBE_FCTRL_UPE (1u << 9)
#define IXGBE_FCTRL_BAM (1u << 10)
#define IXGBE_MRQC 0x05818
#define IXGBE_MRQC_MRQE_MASK 0xfu
#define IXGBE_MRQC_RSSEN 0x1u
#define IXGBE_MRQC_TCPIPV4 (1u << 16)
#define IXGBE_MRQC_IPV4 (1u << 17)
#define IXGBE_MRQC_IPV6 (1u << 20)
#define IXGBE_MRQC_TCPIPV6 (1u << 21)
#define IXGBE_MRQC_UDPIPV4 (1u << 22)
#define IXGBE_MRQC_UDPIPV6 (1u << 23)
#define IXGBE_RETA(i) (0x05C00u + 4u * (i))
#define IXGBE_RSSRK(i) (0x05C80u + 4u * (i))
#define IXGBE_RAL(i) (0x0A200u + 8u * (i))
#define IXGBE_RAH(i) (0x0A204u + 8u * (i))
#define IXGBE_RAL_82598(i) (0x05400u + 8u * (i)) /* entries 0..15 */
#define IXGBE_RAH_82598(i) (0x05404u + 8u * (i))
#define IXGBE_RAH_AV (1u << 31)

/* ---- MAC and link (8.2.3.22) */
#define IXGBE_HLREG0 0x04240
#define IXGBE_HLREG0_TXCRCEN (1u << 0)
#define IXGBE_HLREG0_RXCRCSTRP (1u << 1)
#define IXGBE_HLREG0_JUMBOEN (1u << 2)
#define IXGBE_HLREG0_TXPADEN (1u << 10)
#define IXGBE_MAXFRS 0x04268
#define IXGBE_MAXFRS_MFS_SHIFT 16
#define IXGBE_MAXFRS_MFS_MASK 0xffff0000u
#define IXGBE_FRAME_MAX_STD 1518u             /* the limit without JUMBOEN, CRC included */
#define IXGBE_RX_MAX_FRAME 15872u             /* the largest MFS the 82599 takes */
#define IXGBE_AUTOC 0x042A0
#define IXGBE_AUTOC_10G_PMA_PMD_MASK (3u << 7)
#define IXGBE_AUTOC_10G_XAUI (0u << 7)
#define IXGBE_AUTOC_10G_KX4 (1u << 7)
#define IXGBE_AUTOC_10G_CX4 (2u << 7)
#define IXGBE_AUTOC_AN_RESTART (1u << 12)
#define IXGBE_AUTOC_LMS_SHIFT 13
#define IXGBE_AUTOC_LMS_MASK (7u << 13)
#define IXGBE_AUTOC_LMS_1G_NO_AN (0u << 13)
#define IXGBE_AUTOC_LMS_10G_PARALLEL (1u << 13)
#define IXGBE_AUTOC_LMS_1G_AN (2u << 13)
#define IXGBE_AUTOC_LMS_10G_SERIAL (3u << 13)
#define IXGBE_AUTOC_LMS_KX4_KX_KR (4u << 13)
#define IXGBE_AUTOC_LMS_SGMII (5u << 13)
#define IXGBE_AUTOC_LMS_KX4_KX_KR_1G_AN (6u << 13)
#define IXGBE_AUTOC_LMS_KX4_KX_KR_SGMII (7u << 13)
#define IXGBE_LINKS 0x042A4
#define IXGBE_LINKS_UP (1u << 30)
#define IXGBE_LINKS_SPEED_MASK (3u << 28)
#define IXGBE_LINKS_SPEED_10G (3u << 28)
#define IXGBE_LINKS_SPEED_1G (2u << 28)
#define IXGBE_LINKS_SPEED_100M (1u << 28)
#define IXGBE_AUTOC2 0x042A8
#define IXGBE_AUTOC2_10G_PMA_PMD_SERIAL_MASK (3u << 16)
#define IXGBE_AUTOC2_10G_KR (0u << 16)
#define IXGBE_AUTOC2_10G_SFI (2u << 16)
#define IXGBE_AUTOC2_LINK_DISABLE_MASK (7u << 28)
#define IXGBE_ANLP1 0x042B0
#define IXGBE_ANLP1_AN_STATE_MASK (0xfu << 16)

/* ---- statistics (8.2.3.23), clear on read */
#define IXGBE_CRCERRS 0x04000
#define IXGBE_RLEC 0x04040
#define IXGBE_GPRC 0x04074
#define IXGBE_GPTC 0x04080
#define IXGBE_GORCL 0x04088
#define IXGBE_GORCH 0x0408C
#define IXGBE_GOTCL 0x04090
#define IXGBE_GOTCH 0x04094
#define IXGBE_ROC 0x040AC
#define IXGBE_STAT_QUEUES 16

/* ---- transmit (8.2.3.9) */
#define IXGBE_RTTDCS 0x04900
#define IXGBE_RTTDCS_ARBDIS (1u << 6)
#define IXGBE_TXPBTHRESH(i) (0x04950u + 4u * (i))
#define IXGBE_DMATXCTL 0x04A80
#define IXGBE_DMATXCTL_TE (1u << 0)
#define IXGBE_TXQ_BASE 0x06000u
#define IXGBE_TDBAL(q) (0x06000u + 0x40u * (q))
#define IXGBE_TDBAH(q) (0x06004u + 0x40u * (q))
#define IXGBE_TDLEN(q) (0x06008u + 0x40u * (q))
#define IXGBE_DCA_TXCTRL(q) (0x0600Cu + 0x40u * (q))
#define IXGBE_TDH(q) (0x06010u + 0x40u * (q))
#define IXGBE_TDT(q) (0x06018u + 0x40u * (q))
#define IXGBE_TXDCTL(q) (0x06028u + 0x40u * (q))
#define IXGBE_QPTC(q) (0x06030u + 0x40u * (q))
#define IXGBE_DCA_TXCTRL_DESC_WRO_EN (1u << 11)
#define IXGBE_TXDCTL_ENABLE (1u << 25)
#define IXGBE_TXDCTL_SWFLSH (1u << 26)
#define IXGBE_DTXMXSZRQ 0x08100
#define IXGBE_TXPBSIZE(i) (0x0CC00u + 4u * (i))
#define IXGBE_TXPBSIZE_160KB (160u << 10)
#define IXGBE_TX_MAX_FRAME_KB 10u             /* TXPBTHRESH = buffer KB - this */
#define IXGBE_TX_MIN_LEN 17u                  /* shortest frame the tx DMA handles */

/* ---- advanced receive descriptor (7.1.6): read format, then write-back format */
union ixgbe_adv_rx_desc {
    struct {
        uint64_t pkt_addr;
        uint64_t hdr_addr;
    } read;
    struct {
        uint32_t pkt_info;     /* 3:0 RSS type, 16:4 packet type */
        uint32_t rss_hash;
        uint32_t status_error; /* 19:0 status, 31:20 extended errors */
        uint16_t length;
        uint16_t vlan;
    } wb;
};
#define IXGBE_RXD_STAT_DD (1u << 0)
#define IXGBE_RXD_STAT_EOP (1u << 1)
#define IXGBE_RXD_STAT_L4CS (1u << 5)
#define IXGBE_RXD_STAT_IPCS (1u << 6)
#define IXGBE_RXD_ERR_SECERR_MASK (3u << 27)
#define IXGBE_RXD_ERR_RXE (1u << 29)
#define IXGBE_RXD_ERR_L4E (1u << 30)
#define IXGBE_RXD_ERR_IPE (1u << 31)
#define IXGBE_PKTTYPE_IPV4 (1u << 4)
#define IXGBE_PKTTYPE_IPV6 (1u << 6)
#define IXGBE_PKTTYPE_TCP (1u << 8)
#define IXGBE_PKTTYPE_UDP (1u << 9)
#define IXGBE_RSSTYPE_NONE 0x0u
#define IXGBE_RSSTYPE_TCPV4 0x1u
#define IXGBE_RSSTYPE_IPV4 0x2u
#define IXGBE_RSSTYPE_TCPV6 0x3u
#define IXGBE_RSSTYPE_IPV6 0x5u
#define IXGBE_RSSTYPE_UDPV4 0x7u
#define IXGBE_RSSTYPE_UDPV6 0x8u

/* ---- advanced transmit data descriptor (7.2.3.2.4) */
union ixgbe_adv_tx_desc {
    struct {
        uint64_t buffer_addr;
        uint32_t cmd_type_len;  /* 15:0 length, 23:20 DTYP, 31:24 DCMD */
        uint32_t olinfo_status; /* 31:14 PAYLEN */
    } read;
    struct {
        uint64_t rsvd;
        uint32_t nxtseq_seed;
        uint32_t status;        /* bit 0 DD */
    } wb;
};
#define IXGBE_TXD_LEN_MASK 0xffffu
#define IXGBE_TXD_DTYP_MASK (0xfu << 20)
#define IXGBE_TXD_DTYP_DATA (0x3u << 20)
#define IXGBE_TXD_CMD_EOP (1u << 24)
#define IXGBE_TXD_CMD_IFCS (1u << 25)
#define IXGBE_TXD_CMD_RS (1u << 27)
#define IXGBE_TXD_CMD_DEXT (1u << 29)
#define IXGBE_TXD_PAYLEN_SHIFT 14
#define IXGBE_TXD_STAT_DD (1u << 0)

_Static_assert(sizeof(union ixgbe_adv_rx_desc) == 16, "an rx descriptor is 16 bytes");
_Static_assert(sizeof(union ixgbe_adv_tx_desc) == 16, "a tx descriptor is 16 bytes");

#endif
